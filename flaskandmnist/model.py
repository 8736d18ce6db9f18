"""The mnist_deep CNN and fast in-process inference with it.

Topology as in TensorFlow's ``mnist_deep`` tutorial: 5x5 conv (32) -> 2x2 max-pool ->
5x5 conv (64) -> 2x2 max-pool -> dense 1024 + dropout -> 10 logits.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
#: Most images per interpreter call; larger batches (evaluation) run in parts.
MAX_BATCH = 128


def build_model(dropout: float = 0.5) -> keras.Model:
    """Return a fresh, uncompiled mnist_deep model taking (batch, 28, 28) floats in [0, 1]."""
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
    outputs = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name="mnist_deep")


def card_path(model_path: Path) -> Path:
    """The model card (JSON) that sits beside a weights file: ``x.weights.h5`` -> ``x.json``."""
    name = model_path.name.removesuffix(".h5").removesuffix(".weights")
    return model_path.with_name(f"{name}.json")


class ModelNotFoundError(FileNotFoundError):
    """The weights file or its model card is missing."""


@dataclass(frozen=True)
class Prediction:
    """What the classifier says about one image."""

    digit: int
    confidence: float
    probabilities: tuple[float, ...]  # ten, summing to 1


class Classifier:
    """A trained model, loaded once, answering many predictions quickly.

    Inference runs the model converted to LiteRT (TensorFlow Lite, XNNPACK kernels) rather
    than through TensorFlow: per call it costs a fraction of the CPU time of even a traced
    ``tf.function`` (README: "Benchmarks"), and ``model.predict`` is slower still. The
    weights are stored as int8 (dynamic-range quantization): a quarter of the 12.8 MB of
    float weights, which each call reads whole, so one image takes about half the time,
    most of all when other work has pushed the weights out of the CPU caches. On MNIST's
    test set it names the same digits as the float model (README: "Model"). The Keras model
    stays for training and export.
    """

    def __init__(self, model: keras.Model, card: dict[str, Any]) -> None:
        self.model = model
        self.card = card
        self.version: str = card.get("model_version", "unknown")
        self._litert = _to_litert(model)
        # Interpreters by the batch size their tensors are allocated for: resizing one costs
        # about as much as a call, and the batches of concurrent requests vary in size.
        self._interpreters: dict[int, _Interpreter] = {}
        # An interpreter runs one call at a time.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_path: Path | str) -> Classifier:
        """Load weights and model card; raise :class:`ModelNotFoundError` if absent."""
        model_path = Path(model_path)
        card_file = card_path(model_path)
        for path in (model_path, card_file):
            if not path.is_file():
                raise ModelNotFoundError(
                    f"{path} not found: train a model with `python -m flaskandmnist train` "
                    "or set MODEL_PATH to an existing weights file"
                )
        model = build_model()
        model.load_weights(model_path)
        return cls(model, json.loads(card_file.read_text()))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, 10), for images of shape (n, 28, 28) in [0, 1]."""
        batch = np.ascontiguousarray(images, dtype=np.float32).reshape(-1, *IMAGE_SHAPE)
        if not len(batch):
            return np.empty((0, NUM_CLASSES), np.float32)
        chunks = range(0, len(batch), MAX_BATCH)
        return np.concatenate([self._run(batch[start : start + MAX_BATCH]) for start in chunks])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        # Padded to the next power of two, so that a process needs at most eight
        # interpreters (about 3 MB of weights each, and the tensors for their batch size).
        size = 1 << (len(batch) - 1).bit_length()
        padded = np.zeros((size, *IMAGE_SHAPE), np.float32)
        padded[: len(batch)] = batch
        with self._lock:
            interpreter = self._interpreters.get(size)
            if interpreter is None:
                interpreter = self._interpreters[size] = _Interpreter(self._litert, size)
            return interpreter(padded)[: len(batch)]

    def predict(self, images: np.ndarray) -> list[Prediction]:
        """Digit, confidence and all ten probabilities for each of ``images``."""
        return [
            Prediction(int(p.argmax()), float(p.max()), tuple(float(v) for v in p))
            for p in self.probabilities(images)
        ]

    def predict_one(self, image: np.ndarray) -> Prediction:
        """Prediction for a single (28, 28) image."""
        return self.predict(image[np.newaxis])[0]


class _Interpreter:
    """A LiteRT interpreter with its tensors allocated for one batch size."""

    def __init__(self, litert: bytes, batch_size: int) -> None:
        # One thread: a worker process serves one batch at a time, and the processes and
        # the database share the cores; more threads cost more CPU time per image.
        self._interpreter = Interpreter(model_content=litert, num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._interpreter.resize_tensor_input(self._input, (batch_size, *IMAGE_SHAPE))
        self._interpreter.allocate_tensors()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)  # a copy


def _to_litert(model: keras.Model) -> bytes:
    """The model with a softmax on its logits, as a LiteRT flatbuffer with int8 weights
    (about two seconds)."""
    with_softmax = keras.Model(model.inputs, keras.layers.Softmax()(model.outputs[0]))
    converter = tf.lite.TFLiteConverter.from_keras_model(with_softmax)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # The converter exports a SavedModel first and prints where to stdout, which is the
    # server's log; nobody needs that path.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()
