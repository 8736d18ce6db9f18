"""The mnist_deep CNN (Keras, for training) and its export for serving.

Topology as in TensorFlow's ``mnist_deep`` tutorial: 5x5 conv (32) -> 2x2 max-pool ->
5x5 conv (64) -> 2x2 max-pool -> dense 1024 + dropout -> 11 logits (the ten digits, then
"not a digit"). Serving runs the exported LiteRT model (:mod:`flaskandmnist.classifier`),
calibrated and without TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import keras
import tensorflow as tf

from flaskandmnist.classifier import (
    IMAGE_SHAPE,
    NUM_CLASSES,
    ModelNotFoundError,
    card_path,
    litert_path,
    write_card,
)


def build_model(dropout: float = 0.5, outputs: int = NUM_CLASSES) -> keras.Model:
    """Return a fresh, uncompiled mnist_deep model taking (batch, 28, 28) floats in [0, 1]
    (``outputs`` logits: 10 for the earlier, digits-only models)."""
    layers = keras.layers
    inputs = keras.Input(shape=IMAGE_SHAPE, name="image")
    x = layers.Reshape((*IMAGE_SHAPE, 1))(inputs)
    x = layers.Conv2D(32, 5, padding="same", activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 5, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(1024, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    logits = layers.Dense(outputs, name="logits")(x)
    return keras.Model(inputs, logits, name="mnist_deep")


def to_litert(model: keras.Model, temperature: float = 1.0) -> bytes:
    """The model with a softmax on its logits divided by ``temperature`` (calibrated
    probabilities), as a LiteRT flatbuffer with int8 weights (dynamic-range quantization)."""
    scaled = keras.layers.Rescaling(1.0 / temperature)(model.outputs[0])
    with_softmax = keras.Model(model.inputs, keras.layers.Softmax()(scaled))
    converter = tf.lite.TFLiteConverter.from_keras_model(with_softmax)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # The converter exports a SavedModel first and prints where to stdout; nobody needs
    # that path.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def save_litert(model: keras.Model, model_path: Path, card: dict) -> bytes:
    """Writes the model's LiteRT export beside its weights file, calibrated with the card's
    temperature, names it in ``card`` (which the caller writes) and returns it."""
    litert = to_litert(model, card.get("temperature", 1.0))
    litert_path(model_path).write_bytes(litert)
    card["litert_file"] = litert_path(model_path).name
    card["litert_sha256"] = hashlib.sha256(litert).hexdigest()
    return litert


def export(model_path: Path) -> dict:
    """Writes the LiteRT model of an existing weights file and records it in its model
    card; returns the card."""
    card_file = card_path(model_path)
    for path in (model_path, card_file):
        if not path.is_file():
            raise ModelNotFoundError(f"{path} not found")
    model = build_model()
    model.load_weights(model_path)
    card = json.loads(card_file.read_text())
    save_litert(model, model_path, card)
    write_card(model_path, card)
    return card
