"""Train the mnist_deep model: seeded, augmented, validated on a held-out training split.

Besides the ten digits the model learns an eleventh answer, "not a digit", from synthetic
negatives (:mod:`flaskandmnist.negatives`). Its probabilities are calibrated by a temperature
fitted on the validation split. The test set and the held-out negatives are only looked at
once, after training, to write the model card.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from . import negatives, suite
from .classifier import (
    IMAGE_SHAPE,
    NOT_A_DIGIT,
    NUM_CLASSES,
    NUM_DIGITS,
    REFUSE_PROBABILITY,
    Classifier,
    write_card,
)
from .evaluation import calibration_error, evaluate, refusal_rate
from .imaging import mnist_to_png, to_mnist
from .mnist import Mnist, split_validation, to_float
from .model import build_model, save_litert

IMAGE_SIDE = IMAGE_SHAPE[0]
ARCHITECTURE = "mnist_deep: conv5x5x32-pool-conv5x5x64-pool-fc1024-dropout-fc11"
OUTPUTS = "digits 0-9, then not a digit"


@dataclass(frozen=True)
class HyperParameters:
    """Everything that decides the trained weights (recorded in the model card)."""

    epochs: int = 28
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
    thickness_jitter: float = 0.5  # probability of thickening or thinning a digit
    # Elastic distortion (Simard et al. 2003): a smoothed random displacement field.
    elastic_share: float = 0.5  # of the images distorted
    elastic_alpha: float = 34.0
    elastic_sigma: float = 4.0
    # Negatives ("not a digit") per kind, drawn with the seed; validation gets a fifth as many.
    negatives: tuple[tuple[str, int], ...] = (
        ("dots", 2500),
        ("lines", 2500),
        ("scribbles", 3000),
        ("partial", 800),
        ("several", 2000),
        ("letters", 3000),
    )
    # A share of the training digits also redrawn by these changes of the robustness suite
    # (suite.redraw) and sent through the pipeline: a pen's strokes, a low-resolution photo,
    # bold ink. Each redrawn digit gets one change, drawn from this list: the two that
    # augmenting 28x28 digits imitates least are listed twice.
    redrawn_share: float = 0.5
    redrawn_changes: tuple[str, ...] = (
        "pen 1-4%",
        "pen 4-8%",
        "pen 8-12%",
        "downsampled 8-16 px",
        "downsampled 8-16 px",
        "bold",
        "bold",
    )
    # Weights are the exponential moving average of the steps' weights.
    ema_momentum: float = 0.999
    #: Start from these weights (a 10-digit or an 11-output model) instead of random ones.
    warm_start: str | None = None


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


def _gaussian_blur(field: tf.Tensor, sigma: float) -> tf.Tensor:
    """Blur each channel of (n, h, w, c) with a separable Gaussian."""
    radius = int(2 * sigma)
    taps = tf.exp(-0.5 * (tf.range(-radius, radius + 1, dtype=tf.float32) / sigma) ** 2)
    taps /= tf.reduce_sum(taps)
    channels = field.shape[-1]
    rows = tf.tile(tf.reshape(taps, (-1, 1, 1, 1)), (1, 1, channels, 1))
    cols = tf.reshape(rows, (1, -1, channels, 1))
    field = tf.nn.depthwise_conv2d(field, rows, (1, 1, 1, 1), "SAME")
    return tf.nn.depthwise_conv2d(field, cols, (1, 1, 1, 1), "SAME")


def _elastic(x: tf.Tensor, hp: HyperParameters) -> tf.Tensor:
    """Elastic distortion of (n, 28, 28, 1), on a random share of the batch."""
    batch = tf.shape(x)[0]
    field = tf.random.uniform((batch, IMAGE_SIDE, IMAGE_SIDE, 2), -1.0, 1.0)
    field = _gaussian_blur(field, hp.elastic_sigma) * hp.elastic_alpha
    chosen = tf.cast(tf.random.uniform((batch, 1, 1, 1)) < hp.elastic_share, tf.float32)
    field *= chosen
    grid = tf.cast(tf.range(IMAGE_SIDE), tf.float32)
    rows = tf.clip_by_value(grid[None, :, None] + field[..., 0], 0.0, IMAGE_SIDE - 1.0)
    cols = tf.clip_by_value(grid[None, None, :] + field[..., 1], 0.0, IMAGE_SIDE - 1.0)
    # Bilinear sampling at (rows, cols).
    r0, c0 = tf.floor(rows), tf.floor(cols)
    fr, fc = rows - r0, cols - c0
    r0, c0 = tf.cast(r0, tf.int32), tf.cast(c0, tf.int32)
    r1, c1 = tf.minimum(r0 + 1, IMAGE_SIDE - 1), tf.minimum(c0 + 1, IMAGE_SIDE - 1)
    image = x[..., 0]

    def at(r: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
        return tf.gather_nd(image, tf.stack([r, c], axis=-1), batch_dims=1)

    top = at(r0, c0) * (1 - fc) + at(r0, c1) * fc
    bottom = at(r1, c0) * (1 - fc) + at(r1, c1) * fc
    return (top * (1 - fr) + bottom * fr)[..., tf.newaxis]


def augment(images: tf.Tensor, hp: HyperParameters) -> tf.Tensor:
    """Randomly distort a batch of (n, 28, 28) images the way handwriting varies."""
    batch = tf.shape(images)[0]
    x = _elastic(images[..., tf.newaxis], hp)
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
    strength = tf.random.uniform((batch, 1, 1, 1), 0.0, 1.0)
    half = hp.thickness_jitter / 2
    x = tf.where(choice < half, x + strength * (dilated - x), x)
    x = tf.where((choice >= half) & (choice < hp.thickness_jitter), x + strength * (eroded - x), x)
    return tf.clip_by_value(x[..., 0], 0.0, 1.0)


def _dataset(
    images: np.ndarray, labels: np.ndarray, hp: HyperParameters, train: bool
) -> tf.data.Dataset:
    """Batches of float images in [0, 1] and one-hot labels (augmented for training)."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if train:
        ds = ds.shuffle(len(images), seed=hp.seed, reshuffle_each_iteration=True)
    ds = ds.batch(hp.batch_size)
    if train:
        ds = ds.map(lambda x, y: (augment(x, hp), y), num_parallel_calls=tf.data.AUTOTUNE)
    one_hot = lambda x, y: (x, tf.one_hot(y, NUM_CLASSES))  # noqa: E731
    return ds.map(one_hot).prefetch(tf.data.AUTOTUNE)


def _with_negatives(
    images: np.ndarray, labels: np.ndarray, hp: HyperParameters, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Float images and labels with the synthetic negatives (label NOT_A_DIGIT) added."""
    counts = {kind: max(1, round(n * share)) for kind, n in hp.negatives}
    extra, _ = negatives.make_all(counts, seed, images)
    return (
        np.concatenate([to_float(images), extra]),
        np.concatenate([labels.astype(np.int32), np.full(len(extra), NOT_A_DIGIT, np.int32)]),
    )


def examples(
    images: np.ndarray, labels: np.ndarray, hp: HyperParameters, negatives_share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Float images and labels: the digits, the negatives and the redrawn digits."""
    x, y = _with_negatives(images, labels, hp, negatives_share, seed)
    count = round(len(images) * hp.redrawn_share)
    redrawn_x, redrawn_y = suite.redraw(images, labels, hp.redrawn_changes, count, seed + 99)
    return np.concatenate([x, redrawn_x]), np.concatenate([y, redrawn_y])


def validation_examples(data: Mnist, hp: HyperParameters) -> tuple[np.ndarray, np.ndarray]:
    """The validation split as training uses it: its digits, negatives and redrawn digits."""
    _, (val_x, val_y) = split_validation(
        data.train_images, data.train_labels, hp.validation_size, hp.seed
    )
    return examples(val_x, val_y, hp, 0.2, hp.seed + 1)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (Guo et
    al. 2017): one number, so it calibrates without changing any answer."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(4.0), 241))
    shifted = logits - logits.max(axis=1, keepdims=True)

    def nll(t: float) -> float:
        scaled = shifted / t
        log_z = np.log(np.exp(scaled).sum(axis=1))
        return float(np.mean(log_z - scaled[np.arange(len(labels)), labels]))

    return float(min(grid, key=nll))


def warm_started(path: str, dropout: float) -> keras.Model:
    """A fresh model with the weights of ``path``; a 10-digit model's output rows go to the
    digits, and "not a digit" starts from small random weights."""
    model = build_model(dropout)
    try:
        model.load_weights(path)
        return model
    except ValueError:
        pass  # a 10-digit model
    old = build_model(dropout, outputs=NUM_DIGITS)
    old.load_weights(path)
    for layer in old.layers:
        if layer.name != "logits" and layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    kernel, bias = model.get_layer("logits").get_weights()
    old_kernel, old_bias = old.get_layer("logits").get_weights()
    kernel[:, :NUM_DIGITS], bias[:NUM_DIGITS] = old_kernel, old_bias
    model.get_layer("logits").set_weights([kernel, bias])
    return model


def library_versions() -> dict[str, str]:
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
    bare = build_model(outputs=model.outputs[0].shape[-1])
    bare.set_weights(model.get_weights())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    bare.save_weights(out_path)
    return hashlib.sha256(out_path.read_bytes()).hexdigest()


def train(data: Mnist, out_path: Path, hp: HyperParameters, verbose: int = 2) -> dict[str, Any]:
    """Train, save weights to ``out_path`` and the model card beside it; return the card."""
    keras.utils.set_random_seed(hp.seed)
    (train_x, train_y), (val_x, _) = split_validation(
        data.train_images, data.train_labels, hp.validation_size, hp.seed
    )
    started = time.monotonic()
    train_set = examples(train_x, train_y, hp, 1.0, hp.seed)
    val_set = validation_examples(data, hp)
    print(
        f"{len(train_set[1])} training images ({np.sum(train_set[1] == NOT_A_DIGIT)} not "
        f"digits, {np.sum(train_set[1] != NOT_A_DIGIT) - len(train_y)} redrawn digits), "
        f"{len(val_set[1])} validation images",
        flush=True,
    )
    model = warm_started(hp.warm_start, hp.dropout) if hp.warm_start else build_model(hp.dropout)
    fit(model, train_set, val_set, hp, verbose)
    training_seconds = time.monotonic() - started

    digest = save_weights(model, out_path)
    temperature = fit_temperature(model.predict(val_set[0], verbose=0), val_set[1])
    today = dt.datetime.now(dt.UTC)
    card: dict[str, Any] = {
        "model_version": version_name(today, digest),
        "architecture": ARCHITECTURE,
        "outputs": OUTPUTS,
        "weights_file": out_path.name,
        "weights_sha256": digest,
        "trained_at": today.isoformat(timespec="seconds"),
        "training_seconds": round(training_seconds, 1),
        # As JSON holds them: the negatives' (kind, count) pairs as a mapping, the changes a list.
        "hyper_parameters": asdict(hp)
        | {"negatives": dict(hp.negatives), "redrawn_changes": list(hp.redrawn_changes)},
        "temperature": round(temperature, 4),
        "data": {
            "train_examples": len(train_x),
            "train_negatives": int(np.sum(train_set[1] == NOT_A_DIGIT)),
            "train_redrawn": int(np.sum(train_set[1] != NOT_A_DIGIT)) - len(train_x),
            "validation_examples": len(val_x),
            "validation_negatives": int(np.sum(val_set[1] == NOT_A_DIGIT)),
            "validation_redrawn": int(np.sum(val_set[1] != NOT_A_DIGIT)) - len(val_x),
            "md5_uncompressed": data.checksums,
        },
        "library_versions": library_versions(),
    }
    # Evaluated as served: the LiteRT model, int8 weights, calibrated.
    classifier = Classifier(save_litert(model, out_path, card), card)
    card.update(figures(classifier, data))
    write_card(out_path, card)
    return card


def version_name(when: dt.datetime, weights_sha256: str) -> str:
    """A model version's name: the day it was trained and its weights' checksum."""
    return f"mnist-deep-{when:%Y%m%d}-{weights_sha256[:8]}"


def fit(
    model: keras.Model,
    train_set: tuple[np.ndarray, np.ndarray],
    val_set: tuple[np.ndarray, np.ndarray],
    hp: HyperParameters,
    verbose: int = 2,
) -> None:
    """Trains ``model`` on float images and labels, augmented, with the learning rate
    schedule and weight averaging of ``hp``; it ends with the averaged weights."""
    steps_per_epoch = math.ceil(len(train_set[1]) / hp.batch_size)
    warmup = hp.warmup_epochs * steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=hp.learning_rate / 10,
        decay_steps=hp.epochs * steps_per_epoch - warmup,
        alpha=0.01,
        warmup_target=hp.learning_rate,
        warmup_steps=warmup,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(
            schedule, use_ema=hp.ema_momentum > 0, ema_momentum=hp.ema_momentum
        ),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=hp.label_smoothing
        ),
        metrics=["accuracy"],
    )
    model.fit(
        _dataset(*train_set, hp, train=True),
        validation_data=_dataset(*val_set, hp, train=False),
        epochs=hp.epochs,
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=verbose,
        # Validate the averaged weights, which are the ones kept at the end.
        callbacks=[keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if hp.ema_momentum else [],
    )


def figures(classifier: Classifier, data: Mnist) -> dict[str, Any]:
    """What the model card records: accuracy and calibration on the MNIST test set, false
    refusals of its digits sent through the image pipeline, and refusals of held-out
    negatives."""
    test_images = to_float(data.test_images)
    probabilities = classifier.probabilities(test_images)
    test = evaluate(classifier, test_images, data.test_labels)
    # As an upload: each digit a black-on-white PNG, then normalised.
    uploaded = np.stack([to_mnist(mnist_to_png(1.0 - image)) for image in test_images])
    held_out = {
        kind: refusal_rate(classifier.probabilities(negatives.held_out(kind, data.test_images)))
        for kind in negatives.KINDS
    }
    return {
        # The rule the figures were measured under (see classifier.answers).
        "refuse_probability": REFUSE_PROBABILITY,
        "test_accuracy": round(test.accuracy, 5),
        "test_per_class_accuracy": {str(d): round(a, 5) for d, a in enumerate(test.per_class)},
        "test_calibration_error": round(calibration_error(probabilities, data.test_labels), 5),
        "test_refused_through_pipeline": round(refusal_rate(classifier.probabilities(uploaded)), 5),
        "held_out_negatives_refused": {kind: round(rate, 4) for kind, rate in held_out.items()},
    }
