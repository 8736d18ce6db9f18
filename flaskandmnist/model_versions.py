"""Model versions as the registry keeps them, and the rule for promoting one.

Domain values apart from storage: :mod:`flaskandmnist.registry` stores them in Cassandra,
the command line and the web app show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: How far below the active version's MNIST test accuracy a candidate may be and still be
#: promoted without ``--force``: 0.1 percentage points.
ACCURACY_TOLERANCE = 0.001


class RegistryError(RuntimeError):
    """A registry operation that cannot be done, with a message for the operator."""


class ChecksumError(RegistryError):
    """A stored LiteRT or weights file is not the one its version was registered with."""


@dataclass(frozen=True)
class ModelVersion:
    """A registered model: its card (metrics, hyper-parameters), the version it was made
    from, what it was trained on, its LiteRT file's checksum and size, and its Keras
    weights' (None for a version registered without them, which cannot be retrained)."""

    version: str
    card: dict[str, Any] = field(repr=False)
    parent: str | None
    trained_on: dict[str, Any] = field(repr=False)
    created_at: datetime
    litert_sha256: str
    litert_size: int
    weights_sha256: str | None = None
    weights_size: int | None = None

    @property
    def test_accuracy(self) -> float | None:
        """Accuracy on the 10,000 MNIST test images, as its card gives it."""
        value = self.card.get("test_accuracy")
        return float(value) if value is not None else None


@dataclass(frozen=True)
class Activation:
    """A change of the active version: which one, why, and where a rollback would go."""

    version: str
    #: The version a rollback from this one returns to; None for the first one served.
    rollback_to: str | None
    #: "registered" (the shipped model, first start), "promote", "promote --force", "rollback".
    action: str
    activated_at: datetime


def promotion_refusal(candidate: ModelVersion, active: ModelVersion) -> str | None:
    """Why ``candidate`` may not replace ``active`` without ``--force``; None if it may.

    The gate is MNIST test accuracy: a candidate more than ACCURACY_TOLERANCE below the
    active version, or one whose card does not say, is refused.
    """
    if candidate.test_accuracy is None:
        return f"the card of {candidate.version} gives no test_accuracy"
    if active.test_accuracy is None:
        return None
    # Rounded: accuracies are counts over 10,000 images, and float subtraction of two of
    # them must not refuse a candidate exactly at the tolerance.
    if round(active.test_accuracy - candidate.test_accuracy, 9) > ACCURACY_TOLERANCE:
        return (
            f"{candidate.version} has MNIST test accuracy {candidate.test_accuracy:.2%}, more "
            f"than {ACCURACY_TOLERANCE:.1%} below the active {active.version} "
            f"({active.test_accuracy:.2%})"
        )
    return None
