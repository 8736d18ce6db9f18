"""Train the mnist_deep model: seeded, augmented, validated on a held-out training split.

The test set is only looked at once, after training, to write the model card.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .classifier import IMAGE_SHAPE, NUM_CLASSES, Classifier, card_path
from .evaluation import evaluate
from .mnist import Mnist, split_validation, to_float
from .model import build_model, save_litert

IMAGE_SIDE = IMAGE_SHAPE[0]


@dataclass(frozen=True)
class HyperParameters:
    """Everything that decides the trained weights (recorded in the model card)."""

    epochs: int = 24
    batch_size: int = 128
    learning_rate: float = 1e-3
    warmup_epochs: int = 1
    dropout: float = 0.5
    label_smoothing: float = 0.1
    validation_size: int = 5000
    seed: int = 1234
    # Augmentation: one random affine map per image, plus stroke-thickness jitter.
    max_rotation_deg: float = 12.0
    max_scale: float = 0.12  # zoom in [1 - s, 1 + s]
    max_shear: float = 0.15
    max_shift_px: float = 2.5
    thickness_jitter: float = 0.3  # probability of thickening or thinning a digit


def _affine_transforms(batch: int, hp: HyperParameters) -> tf.Tensor:
    """Random output->input affine maps about the image centre, as ImageProjectiveTransform rows.

    One combined map (rotation, anisotropic scale, shear, shift) means one interpolation,
    so augmented digits stay as sharp as MNIST's own.
    """
    uniform = lambda lo, hi: tf.random.uniform((batch,), lo, hi)  # noqa: E731
    angle = uniform(-1.0, 1.0) * math.radians(hp.max_rotation_deg)
    zoom = 1.0 + uniform(-hp.max_scale, hp.max_scale)
    aspect = 1.0 + uniform(-0.05, 0.05)
    sx, sy = 1.0 / (zoom * aspect), aspect / zoom
    shear = uniform(-hp.max_shear, hp.max_shear)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Linear part: rotation @ shear @ scale, mapping output offsets to input offsets.
    a0, a1 = cos * sx, (cos * shear - sin) * sy
    b0, b1 = sin * sx, (sin * shear + cos) * sy
    centre = (IMAGE_SIDE - 1) / 2.0
    tx = uniform(-hp.max_shift_px, hp.max_shift_px)
    ty = uniform(-hp.max_shift_px, hp.max_shift_px)
    a2 = centre - a0 * centre - a1 * centre + tx
    b2 = centre - b0 * centre - b1 * centre + ty
    zeros = tf.zeros((batch,))
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def augment(images: tf.Tensor, hp: HyperParameters) -> tf.Tensor:
    """Randomly distort a batch of (n, 28, 28) images the way handwriting varies."""
    batch = tf.shape(images)[0]
    x = images[..., tf.newaxis]
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=x,
        transforms=_affine_transforms(batch, hp),
        output_shape=[IMAGE_SIDE, IMAGE_SIDE],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    # Stroke thickness varies between pens: blend towards a grey dilation or erosion.
    dilated = tf.nn.max_pool2d(x, 3, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-x, 2, 1, "SAME")
    choice = tf.random.uniform((batch, 1, 1, 1))
    strength = tf.random.uniform((batch, 1, 1, 1), 0.0, 0.5)
    half = hp.thickness_jitter / 2
    x = tf.where(choice < half, x + strength * (dilated - x), x)
    x = tf.where((choice >= half) & (choice < hp.thickness_jitter), x + strength * (eroded - x), x)
    return tf.clip_by_value(x[..., 0], 0.0, 1.0)


def _dataset(
    images: np.ndarray, labels: np.ndarray, hp: HyperParameters, train: bool
) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((to_float(images), labels.astype(np.int32)))
    if train:
        ds = ds.shuffle(len(images), seed=hp.seed, reshuffle_each_iteration=True)
    ds = ds.batch(hp.batch_size)
    if train:
        ds = ds.map(lambda x, y: (augment(x, hp), y), num_parallel_calls=tf.data.AUTOTUNE)
    one_hot = lambda x, y: (x, tf.one_hot(y, NUM_CLASSES))  # noqa: E731
    return ds.map(one_hot).prefetch(tf.data.AUTOTUNE)


def _library_versions() -> dict[str, str]:
    names = ("tensorflow-cpu", "tensorflow", "keras", "numpy", "pillow")
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def save_weights(model: keras.Model, out_path: Path) -> str:
    """Write the weights alone and return their SHA-256.

    A compiled model would also save its optimizer's slots, tripling the file; the service
    only needs the weights, so they are copied into a fresh, uncompiled model first.
    """
    bare = build_model()
    bare.set_weights(model.get_weights())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    bare.save_weights(out_path)
    return hashlib.sha256(out_path.read_bytes()).hexdigest()


def train(data: Mnist, out_path: Path, hp: HyperParameters, verbose: int = 2) -> dict[str, Any]:
    """Train, save weights to ``out_path`` and the model card beside it; return the card."""
    keras.utils.set_random_seed(hp.seed)
    (train_x, train_y), (val_x, val_y) = split_validation(
        data.train_images, data.train_labels, hp.validation_size, hp.seed
    )
    steps_per_epoch = math.ceil(len(train_x) / hp.batch_size)
    warmup = hp.warmup_epochs * steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=hp.learning_rate / 10,
        decay_steps=hp.epochs * steps_per_epoch - warmup,
        alpha=0.01,
        warmup_target=hp.learning_rate,
        warmup_steps=warmup,
    )
    model = build_model(hp.dropout)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=hp.label_smoothing
        ),
        metrics=["accuracy"],
    )
    started = time.monotonic()
    model.fit(
        _dataset(train_x, train_y, hp, train=True),
        validation_data=_dataset(val_x, val_y, hp, train=False),
        epochs=hp.epochs,
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=verbose,
        # Keep the epoch with the best validation accuracy (never the test set).
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=hp.epochs, restore_best_weights=True
            )
        ],
    )
    training_seconds = time.monotonic() - started

    digest = save_weights(model, out_path)
    today = dt.datetime.now(dt.UTC)
    card: dict[str, Any] = {
        "model_version": f"mnist-deep-{today:%Y%m%d}-{digest[:8]}",
        "architecture": "mnist_deep: conv5x5x32-pool-conv5x5x64-pool-fc1024-dropout-fc10",
        "weights_file": out_path.name,
        "weights_sha256": digest,
        "trained_at": today.isoformat(timespec="seconds"),
        "training_seconds": round(training_seconds, 1),
        "hyper_parameters": asdict(hp),
        "data": {
            "train_examples": len(train_x),
            "validation_examples": len(val_x),
            "md5_uncompressed": data.checksums,
        },
        "library_versions": _library_versions(),
    }
    # Evaluated as served: the LiteRT model, int8 weights.
    classifier = Classifier(save_litert(model, out_path, card), card)
    val = evaluate(classifier, to_float(val_x), val_y)
    test = evaluate(classifier, to_float(data.test_images), data.test_labels)
    card["validation_accuracy"] = round(val.accuracy, 5)
    card["test_accuracy"] = round(test.accuracy, 5)
    card["test_per_class_accuracy"] = {str(d): round(a, 5) for d, a in enumerate(test.per_class)}
    card_path(out_path).write_text(json.dumps(card, indent=2) + "\n")
    return card
