"""What a retrain starts from: the active version's weights, and the labels people gave,
one per corrected prediction, its original image sent through today's pipeline, and a
fixed share held back for evaluation.

Every correction is a label: one that names another digit, one that confirms the model's
answer, and one that names the digit in an image the model answered "not a digit". Of
several corrections of one prediction the latest counts (the ``corrections`` table keeps
one row per prediction already; :func:`latest` says so for any other source too).

Serving requirements only: the retrain command reads and checks everything here before it
loads TensorFlow, so that a retrain that cannot start says so at once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from flaskandmnist.domain import Correction, Prediction
from flaskandmnist.imaging import ImageError, to_mnist
from flaskandmnist.model_versions import ModelVersion
from flaskandmnist.registry import ModelRegistry
from flaskandmnist.storage import PredictionStore

#: Predictions read per request when fetching the original images of corrections.
READ_BATCH = 100


class RetrainError(RuntimeError):
    """A retrain that cannot be done, with a message for the operator."""


@dataclass(frozen=True)
class Labelled:
    """A corrected prediction as a training or evaluation example."""

    prediction_id: uuid.UUID
    day: date
    source: str
    label: int
    #: The original image through today's pipeline: (28, 28) float32 in [0, 1].
    image: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class CorrectionSet:
    """The corrections a retrain learns from and those it holds back, and what it left out."""

    train: list[Labelled]
    held_out: list[Labelled]
    excluded_days: tuple[date, ...] = ()
    excluded_sources: tuple[str, ...] = ()
    #: Corrections left out by the exclusions.
    excluded: int = 0
    #: Corrections whose prediction is gone, or whose image today's pipeline refuses.
    unusable: int = 0

    def summary(self) -> dict[str, object]:
        """What the model card records of them."""
        used = [*self.train, *self.held_out]
        return {
            "train": len(self.train),
            "held_out": len(self.held_out),
            "days": sorted({item.day.isoformat() for item in used}),
            "sources": dict(sorted(Counter(item.source for item in used).items())),
            "excluded_days": [day.isoformat() for day in self.excluded_days],
            "excluded_sources": list(self.excluded_sources),
            "excluded": self.excluded,
            "unusable": self.unusable,
        }


def starting_version(registry: ModelRegistry) -> ModelVersion:
    """The active version, which a retrain fine-tunes; RetrainError if there is none or
    the registry holds no weights of it."""
    active = registry.active()
    version = registry.get(active.version) if active is not None else None
    if active is None or version is None:
        raise RetrainError(
            "no model version is active yet: start the web app once, which registers and "
            "activates the shipped model"
        )
    if version.weights_sha256 is None:
        raise RetrainError(
            f"the active version {version.version} has no weights to start from (it was "
            "registered without them): register them with `scripts/run.sh register "
            "path/to/its.weights.h5`, or promote a version that has them"
        )
    return version


def latest(corrections: Iterable[Correction]) -> list[Correction]:
    """One correction per prediction: the one made last."""
    kept: dict[uuid.UUID, Correction] = {}
    for correction in corrections:
        found = kept.get(correction.prediction_id)
        if found is None or correction.corrected_at > found.corrected_at:
            kept[correction.prediction_id] = correction
    return list(kept.values())


def is_held_out(prediction_id: uuid.UUID, share: float) -> bool:
    """Whether this prediction's correction is kept for evaluation: decided by a hash of
    its id alone, so each retrain holds back the same ones, and new corrections add to
    both sides."""
    digest = hashlib.sha256(prediction_id.bytes).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def read_corrections(
    store: PredictionStore,
    holdout_share: float,
    exclude_days: Sequence[date] = (),
    exclude_sources: Sequence[str] = (),
) -> CorrectionSet:
    """Every stored correction as a labelled example, split by :func:`is_held_out`; those
    of ``exclude_days`` (the predictions' UTC days) and ``exclude_sources`` left out."""
    train: list[Labelled] = []
    held_out: list[Labelled] = []
    excluded = unusable = 0
    for day in store.days():
        corrections = latest(store.corrections(day))
        if day in exclude_days:
            excluded += len(corrections)
            continue
        for start in range(0, len(corrections), READ_BATCH):
            batch = corrections[start : start + READ_BATCH]
            predictions = store.get_many([c.prediction_id for c in batch])
            for correction, prediction in zip(batch, predictions, strict=True):
                if prediction is not None and prediction.source in exclude_sources:
                    excluded += 1
                    continue
                example = _labelled(correction, prediction)
                if example is None:
                    unusable += 1
                    continue
                side = held_out if is_held_out(example.prediction_id, holdout_share) else train
                side.append(example)
    return CorrectionSet(
        train, held_out, tuple(exclude_days), tuple(exclude_sources), excluded, unusable
    )


def _labelled(correction: Correction, prediction: Prediction | None) -> Labelled | None:
    if prediction is None:
        return None
    try:
        image = to_mnist(prediction.image)
    except ImageError:
        return None
    return Labelled(prediction.id, prediction.day, prediction.source, correction.true_digit, image)


def stack(examples: Sequence[Labelled]) -> tuple[np.ndarray, np.ndarray]:
    """The images (n, 28, 28) and labels (n,) of ``examples``."""
    images = np.zeros((len(examples), 28, 28), np.float32)
    for index, example in enumerate(examples):
        images[index] = example.image
    return images, np.array([e.label for e in examples], np.int32)
