"""A candidate against the active version, before anyone promotes it: accuracy on the MNIST
test set and on the corrections a retrain held back, and a replay of the latest stored
predictions (how often the two agree, and which answers would change).

Stored in the candidate's model card (``comparison``): ``scripts/run.sh models``, the
``/api/v1/models`` route and the Models page show it. Serving requirements only.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from flaskandmnist.classifier import Classifier
from flaskandmnist.correction_set import Labelled, stack
from flaskandmnist.evaluation import evaluate
from flaskandmnist.imaging import ImageError, to_mnist
from flaskandmnist.mnist import Mnist, to_float
from flaskandmnist.storage import PredictionStore

#: Changed answers the card lists (the count covers all of them).
CHANGES_KEPT = 100
#: Predictions read per request for a replay.
READ_BATCH = 100


def answers(classifier: Classifier, images: np.ndarray) -> list[int | None]:
    """The classifier's answer for each image: a digit, or None for "not a digit"."""
    return [None if s.not_a_digit else s.digit for s in classifier.predict(images)]


def replay_images(store: PredictionStore, last: int) -> tuple[list[uuid.UUID], np.ndarray]:
    """The ids and images, through today's pipeline, of the ``last`` stored predictions
    (newest first; those whose image the pipeline now refuses are left out)."""
    ids: list[uuid.UUID] = []
    images: list[np.ndarray] = []
    summaries = store.latest(last) if last > 0 else []
    for start in range(0, len(summaries), READ_BATCH):
        batch = [s.id for s in summaries[start : start + READ_BATCH]]
        for prediction in store.get_many(batch):
            if prediction is None:
                continue
            try:
                images.append(to_mnist(prediction.image))
            except ImageError:
                continue
            ids.append(prediction.id)
    return ids, np.stack(images) if images else np.zeros((0, 28, 28), np.float32)


def compare(
    candidate: Classifier,
    active: Classifier,
    data: Mnist,
    held_out: Sequence[Labelled],
    replay_ids: Sequence[uuid.UUID],
    replay: np.ndarray,
) -> dict[str, Any]:
    """The comparison the card keeps, as JSON holds it."""
    test_images = to_float(data.test_images)
    held_images, held_labels = stack(held_out)

    def held_out_accuracy(classifier: Classifier) -> float | None:
        if not len(held_labels):
            return None
        return round(float(np.mean(np.array(answers(classifier, held_images)) == held_labels)), 5)

    old, new = answers(active, replay), answers(candidate, replay)
    changed = [
        {"id": str(prediction_id), "old": before, "new": after}
        for prediction_id, before, after in zip(replay_ids, old, new, strict=True)
        if before != after
    ]
    return {
        "against": active.version,
        "mnist_test_accuracy": {
            "candidate": round(evaluate(candidate, test_images, data.test_labels).accuracy, 5),
            "active": round(evaluate(active, test_images, data.test_labels).accuracy, 5),
        },
        "held_out_corrections": {
            "count": len(held_labels),
            "candidate": held_out_accuracy(candidate),
            "active": held_out_accuracy(active),
        },
        "replay": {
            "count": len(replay_ids),
            "agreement": round(1 - len(changed) / len(replay_ids), 5) if replay_ids else None,
            "changed_count": len(changed),
            "changed": changed[:CHANGES_KEPT],
        },
    }


def answer_text(answer: int | None) -> str:
    return "not a digit" if answer is None else str(answer)


def format_comparison(comparison: dict[str, Any]) -> str:
    """The comparison as ``scripts/run.sh models`` prints it under a candidate."""

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{value:.2%}"

    mnist = comparison["mnist_test_accuracy"]
    held = comparison["held_out_corrections"]
    replay = comparison["replay"]
    lines = [
        f"against {comparison['against']}:",
        f"  MNIST test        {percent(mnist['candidate'])} (active {percent(mnist['active'])})",
        f"  held-out corrections ({held['count']}) {percent(held['candidate'])} "
        f"(active {percent(held['active'])})",
        f"  replay of the last {replay['count']} predictions: "
        f"{percent(replay['agreement'])} agree, {replay['changed_count']} would change",
    ]
    lines += [
        f"    {change['id']}: {answer_text(change['old'])} -> {answer_text(change['new'])}"
        for change in replay["changed"]
    ]
    return "\n".join(lines)
