"""Fast in-process inference with a trained mnist_deep model, without TensorFlow.

A trained model ships as a LiteRT (TensorFlow Lite) flatbuffer with int8 weights beside its
Keras weights (``<name>.tflite``, written by ``train`` and ``export``; see
:mod:`flaskandmnist.model`), so that serving processes import neither TensorFlow nor Keras:
a worker needs far less memory and starts far sooner than with them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

IMAGE_SHAPE = (28, 28)
NUM_DIGITS = 10
#: The model's last output: the image holds no single digit (dots, lines, scribbles,
#: letters, several digits).
NOT_A_DIGIT = NUM_DIGITS
NUM_CLASSES = NUM_DIGITS + 1
#: "Not a digit" is the answer only when the model gives it at least this probability, not
#: merely the largest one: an unusual real digit (bold, low resolution, a thin pen) spreads
#: its probability between its digit and "not a digit", while dots, lines and letters are
#: refused with near certainty. Chosen on the validation split, never the test set
#: (docs/model.md).
REFUSE_PROBABILITY = 0.9
#: Most images per interpreter call; larger batches (evaluation) run in parts.
MAX_BATCH = 128


def card_path(model_path: Path) -> Path:
    """The model card (JSON) that sits beside a weights file: ``x.weights.h5`` -> ``x.json``."""
    return model_path.with_name(f"{_stem(model_path)}.json")


def write_card(model_path: Path, card: dict[str, Any]) -> None:
    """Writes ``card`` as the model card beside the weights file ``model_path``."""
    card_path(model_path).write_text(json.dumps(card, indent=2) + "\n")


def litert_path(model_path: Path) -> Path:
    """The LiteRT model beside a weights file: ``x.weights.h5`` -> ``x.tflite``."""
    return model_path.with_name(f"{_stem(model_path)}.tflite")


def _stem(model_path: Path) -> str:
    return model_path.name.removesuffix(".h5").removesuffix(".weights")


class ModelNotFoundError(FileNotFoundError):
    """The weights file, its model card or its LiteRT model is missing or does not match."""


@dataclass(frozen=True)
class Scores:
    """What the model says about one image (stored with the image as a
    :class:`flaskandmnist.domain.Prediction`)."""

    digit: int  # the most probable digit
    confidence: float  # the probability of the answer: the digit, or "not a digit"
    probabilities: tuple[float, ...]  # ten digits, then "not a digit"; summing to 1
    not_a_digit: bool

    @classmethod
    def of(cls, probabilities: np.ndarray) -> Scores:
        """The scores of one image from the model's calibrated probabilities."""
        digit = int(probabilities[:NUM_DIGITS].argmax())
        answer = int(answers(probabilities[np.newaxis])[0])
        return cls(
            digit=digit,
            confidence=float(probabilities[answer]),
            probabilities=tuple(float(v) for v in probabilities),
            not_a_digit=answer == NOT_A_DIGIT,
        )


def answers(probabilities: np.ndarray, refuse: float = REFUSE_PROBABILITY) -> np.ndarray:
    """The answer to each row of probabilities (n, 11): the most probable digit, or
    NOT_A_DIGIT where that has at least ``refuse``."""
    refused = probabilities[:, NOT_A_DIGIT] >= refuse
    return np.where(refused, NOT_A_DIGIT, probabilities[:, :NUM_DIGITS].argmax(axis=1))


class Classifier:
    """A trained model, loaded once, answering many predictions quickly.

    Inference runs the model as LiteRT (XNNPACK kernels) rather than through TensorFlow: per
    call it costs a fraction of the CPU time of even a traced ``tf.function``, and
    ``model.predict`` is slower still. The weights are int8 (dynamic-range quantization): a
    quarter of the size of the float weights, which each call reads whole, so an image
    takes less time, most of all when other work has pushed the weights out of the CPU
    caches. On MNIST's test set it names the same digits as the float Keras model.
    """

    def __init__(self, litert: bytes, card: dict[str, Any]) -> None:
        self.card = card
        self.version: str = card.get("model_version", "unknown")
        #: The LiteRT flatbuffer, as the model registry stores it.
        self.litert = litert
        # Interpreters by the batch size their tensors are allocated for: resizing one costs
        # about as much as a call, and the batches of concurrent requests vary in size.
        self._interpreters: dict[int, _Interpreter] = {}
        # An interpreter runs one call at a time.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_path: Path | str) -> Classifier:
        """The model whose weights file is ``model_path``, from the LiteRT model and model
        card beside it; raises :class:`ModelNotFoundError` if one is missing or the LiteRT
        model is not the one the card names."""
        model_path = Path(model_path)
        card_file, litert_file = card_path(model_path), litert_path(model_path)
        for path in (card_file, litert_file):
            if not path.is_file():
                raise ModelNotFoundError(
                    f"{path} not found: train a model with `python -m flaskandmnist train`, "
                    "export the LiteRT model of existing weights with `python -m "
                    "flaskandmnist export`, or set MODEL_PATH to an existing weights file"
                )
        card = json.loads(card_file.read_text())
        litert = litert_file.read_bytes()
        if hashlib.sha256(litert).hexdigest() != card.get("litert_sha256"):
            raise ModelNotFoundError(
                f"{litert_file} is not the LiteRT model that {card_file} names: export it "
                "again with `python -m flaskandmnist export`"
            )
        return cls(litert, card)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, shape (n, 11), of images (n, 28, 28) in [0, 1]."""
        batch = np.ascontiguousarray(images, dtype=np.float32).reshape(-1, *IMAGE_SHAPE)
        if not len(batch):
            return np.empty((0, NUM_CLASSES), np.float32)
        chunks = range(0, len(batch), MAX_BATCH)
        return np.concatenate([self._run(batch[start : start + MAX_BATCH]) for start in chunks])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        # Padded to the next power of two, so that a process needs at most eight
        # interpreters (each holds a copy of the weights, and the tensors for its batch size).
        size = 1 << (len(batch) - 1).bit_length()
        padded = np.zeros((size, *IMAGE_SHAPE), np.float32)
        padded[: len(batch)] = batch
        with self._lock:
            interpreter = self._interpreters.get(size)
            if interpreter is None:
                interpreter = self._interpreters[size] = _Interpreter(self.litert, size)
            return interpreter(padded)[: len(batch)]

    def predict(self, images: np.ndarray) -> list[Scores]:
        """The scores of each of ``images``."""
        return [Scores.of(p) for p in self.probabilities(images)]

    def predict_one(self, image: np.ndarray) -> Scores:
        """Scores for a single (28, 28) image."""
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
