"""Accuracy, per-class accuracy and the confusion matrix of a classifier on labelled images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classifier import NUM_CLASSES, Classifier


@dataclass(frozen=True)
class Evaluation:
    """How a model did on a labelled set."""

    accuracy: float
    per_class: tuple[float, ...]  # accuracy (recall) of each true digit
    confusion: np.ndarray  # confusion[true, predicted] counts, shape (10, 10)

    @property
    def errors(self) -> int:
        return int(self.confusion.sum() - np.trace(self.confusion))


def evaluate_predictions(labels: np.ndarray, predicted: np.ndarray) -> Evaluation:
    """Summarise predicted digits against the true labels."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    per_class = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return Evaluation(
        accuracy=float(np.trace(confusion) / max(confusion.sum(), 1)),
        per_class=tuple(float(v) for v in per_class),
        confusion=confusion,
    )


def evaluate(
    classifier: Classifier, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000
) -> Evaluation:
    """Evaluate ``classifier`` on images already in MNIST format (float32 in [0, 1])."""
    predicted = np.concatenate(
        [
            classifier.probabilities(images[start : start + batch_size]).argmax(axis=1)
            for start in range(0, len(images), batch_size)
        ]
    )
    return evaluate_predictions(labels, predicted)


def format_report(result: Evaluation, title: str) -> str:
    """A plain-text table: overall accuracy, per-class accuracy and the confusion matrix."""
    n = int(result.confusion.sum())
    lines = [
        title,
        f"accuracy: {result.accuracy:.2%} ({n - result.errors}/{n}, {result.errors} errors)",
        f"lowest per-class accuracy: {min(result.per_class):.2%} "
        f"(digit {int(np.argmin(result.per_class))})",
        "",
        "confusion matrix (rows: true digit, columns: predicted digit)",
        "true |" + "".join(f"{d:>6}" for d in range(NUM_CLASSES)) + " | accuracy",
        "-----+" + "-" * 6 * NUM_CLASSES + "-+---------",
    ]
    for digit, row in enumerate(result.confusion):
        cells = "".join(f"{v:>6}" for v in row)
        lines.append(f"{digit:>4} |{cells} | {result.per_class[digit]:8.2%}")
    return "\n".join(lines)
