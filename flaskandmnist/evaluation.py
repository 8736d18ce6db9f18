"""How a classifier does on labelled images: accuracy, per-class accuracy, the confusion
matrix (with a column for "not a digit"), calibration error and refusal rates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classifier import NOT_A_DIGIT, NUM_CLASSES, NUM_DIGITS, Classifier, answers


@dataclass(frozen=True)
class Evaluation:
    """How a model did on a labelled set."""

    accuracy: float
    per_class: tuple[float, ...]  # accuracy (recall) of each true digit
    #: confusion[true, predicted] counts, shape (10, 11): the last column is "not a digit".
    confusion: np.ndarray

    @property
    def refused(self) -> float:
        """The share of the digits answered "not a digit"."""
        return float(self.confusion[:, NOT_A_DIGIT].sum() / max(self.confusion.sum(), 1))

    @property
    def errors(self) -> int:
        return int(self.confusion.sum() - np.trace(self.confusion))


def evaluate_predictions(labels: np.ndarray, predicted: np.ndarray) -> Evaluation:
    """Summarise predicted digits against the true labels."""
    confusion = np.zeros((NUM_DIGITS, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    per_class = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return Evaluation(
        accuracy=float(np.trace(confusion) / max(confusion.sum(), 1)),
        per_class=tuple(float(v) for v in per_class),
        confusion=confusion,
    )


def evaluate(classifier: Classifier, images: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Evaluate ``classifier`` on images already in MNIST format (float32 in [0, 1])."""
    return evaluate_predictions(labels, answers(classifier.probabilities(images)))


def calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: how far the confidence of the answers is from how often
    they are right, averaged over equal-width confidence bins weighted by their size."""
    answered = answers(probabilities)
    confidence = probabilities[np.arange(len(answered)), answered]
    right = answered == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap += abs(confidence[inside].mean() - right[inside].mean()) * inside.mean()
    return float(gap)


def refusal_rate(probabilities: np.ndarray) -> float:
    """The share of images answered "not a digit"."""
    return float(np.mean(answers(probabilities) == NOT_A_DIGIT))


def refusal_table(probabilities: np.ndarray, labels: np.ndarray) -> str:
    """How digits (labels 0-9) and negatives (NOT_A_DIGIT) are answered at each threshold
    for refusing: the data for choosing REFUSE_PROBABILITY."""
    digits = labels != NOT_A_DIGIT
    header = f"{'refuse at':<10}{'digits right':>14}{'digits refused':>16}"
    lines = [f"{header}{'negatives refused':>19}"]
    for refuse in (0.5, 0.6, 0.7, 0.8, 0.9):
        answered = answers(probabilities, refuse)
        lines.append(
            f"{refuse:<10}{np.mean(answered[digits] == labels[digits]):>14.2%}"
            f"{np.mean(answered[digits] == NOT_A_DIGIT):>16.2%}"
            f"{np.mean(answered[~digits] == NOT_A_DIGIT):>19.2%}"
        )
    return "\n".join(lines)


def format_report(result: Evaluation, title: str) -> str:
    """A plain-text table: overall accuracy, per-class accuracy and the confusion matrix."""
    n = int(result.confusion.sum())
    lines = [
        title,
        f"accuracy: {result.accuracy:.2%} ({n - result.errors}/{n}, {result.errors} errors)",
        f"lowest per-class accuracy: {min(result.per_class):.2%} "
        f"(digit {int(np.argmin(result.per_class))})",
        f"answered not a digit: {result.refused:.2%}",
        "",
        "confusion matrix (rows: true digit, columns: predicted digit; x: not a digit)",
        "true |" + "".join(f"{d:>6}" for d in range(NUM_DIGITS)) + "     x | accuracy",
        "-----+" + "-" * 6 * NUM_CLASSES + "-+---------",
    ]
    for digit, row in enumerate(result.confusion):
        cells = "".join(f"{v:>6}" for v in row)
        lines.append(f"{digit:>4} |{cells} | {result.per_class[digit]:8.2%}")
    return "\n".join(lines)
