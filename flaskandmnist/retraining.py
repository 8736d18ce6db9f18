"""Retrain: fine-tune the active version on the corrections people gave, compare the result
with the active version, and register it as a candidate (not active).

The fine-tune reuses :mod:`flaskandmnist.training`: the same augmentation, schedule and
weight averaging, on a sample of MNIST's training digits with the corrections repeated
among them (so that a few hundred weigh against thousands of MNIST digits) and the
synthetic "not a digit" negatives in the shipped model's proportion (without them the
eleventh answer would fade). The temperature is fitted again on held-out MNIST digits and
negatives, and the LiteRT export is evaluated as the shipped model's was.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from flaskandmnist.classifier import NOT_A_DIGIT, Classifier, write_card
from flaskandmnist.comparison import compare, replay_images
from flaskandmnist.correction_set import CorrectionSet, stack
from flaskandmnist.mnist import Mnist, split_validation
from flaskandmnist.model import save_litert
from flaskandmnist.model_versions import ModelVersion
from flaskandmnist.registry import ModelRegistry
from flaskandmnist.storage import PredictionStore
from flaskandmnist.training import (
    ARCHITECTURE,
    OUTPUTS,
    HyperParameters,
    examples,
    figures,
    fit,
    fit_temperature,
    library_versions,
    save_weights,
    version_name,
    warm_started,
)

#: The MNIST digits HyperParameters.negatives are counted for (the shipped model's
#: training split), and its validation digits.
_SHIPPED = HyperParameters()
_SHIPPED_TRAIN_DIGITS = 60_000 - _SHIPPED.validation_size


@dataclass(frozen=True)
class FineTuning:
    """Everything that decides a retrain's weights (recorded in the candidate's card)."""

    epochs: int = 1
    #: MNIST training digits mixed in, a seeded sample: what keeps MNIST accuracy.
    mnist_sample: int = 10_000
    #: Lower than training from scratch: the weights move towards the corrections without
    #: forgetting what they knew.
    learning_rate: float = 1e-4
    #: The corrections are repeated until they make about this share of the MNIST digits...
    corrections_share: float = 0.1
    #: ...but each at most this many times.
    max_repeats: int = 10
    #: MNIST training digits kept apart for the temperature.
    validation_size: int = 2000
    #: Fewer steps than a training from scratch: a shorter average.
    ema_momentum: float = 0.99
    seed: int = 1234

    def repeats(self, corrections: int) -> int:
        """How many times each correction is shown per epoch."""
        if corrections == 0:
            return 0
        wanted = round(self.corrections_share * self.mnist_sample / corrections)
        return max(1, min(self.max_repeats, wanted))

    def hyper_parameters(self, warm_start: Path) -> HyperParameters:
        return HyperParameters(
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            warmup_epochs=0,
            validation_size=self.validation_size,
            ema_momentum=self.ema_momentum,
            seed=self.seed,
            warm_start=str(warm_start),
        )


def fine_tune(
    parent: str,
    weights: bytes,
    corrections: tuple[np.ndarray, np.ndarray],
    data: Mnist,
    ft: FineTuning,
    out_path: Path,
    trained_on: dict[str, Any],
    verbose: int = 2,
) -> tuple[Classifier, bytes]:
    """Fine-tunes the ``weights`` of version ``parent`` on the ``corrections`` (images,
    labels) and an MNIST sample; writes the weights to ``out_path``, the LiteRT file and
    card beside them, and returns the candidate and its weights file."""
    keras.utils.set_random_seed(ft.seed)
    started = time.monotonic()
    start_path = out_path.with_name("parent.weights.h5")
    start_path.write_bytes(weights)
    hp = ft.hyper_parameters(start_path)
    (pool_x, pool_y), (val_x, val_y) = split_validation(
        data.train_images, data.train_labels, ft.validation_size, ft.seed
    )
    chosen = np.random.default_rng(ft.seed).choice(
        len(pool_x), min(ft.mnist_sample, len(pool_x)), replace=False
    )
    # The negatives in the proportion the shipped model learnt them, and the digits also
    # redrawn as in its training: a candidate keeps reading drawings and small photos.
    digits_x, digits_y = examples(
        pool_x[chosen], pool_y[chosen], hp, len(chosen) / _SHIPPED_TRAIN_DIGITS, ft.seed
    )
    val_share = 0.2 * ft.validation_size / _SHIPPED.validation_size
    val_set = examples(val_x, val_y, hp, val_share, ft.seed + 1)
    repeats = ft.repeats(len(corrections[1]))
    train_set = (
        np.concatenate([digits_x, *[corrections[0]] * repeats]),
        np.concatenate([digits_y, *[corrections[1]] * repeats]),
    )
    print(
        f"fine-tuning {parent} for {ft.epochs} epochs on {len(train_set[1])} images: "
        f"{len(chosen)} MNIST digits, {np.sum(digits_y == NOT_A_DIGIT)} not digits, "
        f"{np.sum(digits_y != NOT_A_DIGIT) - len(chosen)} redrawn digits, "
        f"{len(corrections[1])} corrections x {repeats}",
        flush=True,
    )
    model = warm_started(hp.warm_start, hp.dropout)
    fit(model, train_set, val_set, hp, verbose)
    training_seconds = time.monotonic() - started

    digest = save_weights(model, out_path)
    temperature = fit_temperature(model.predict(val_set[0], verbose=0), val_set[1])
    today = dt.datetime.now(dt.UTC)
    card: dict[str, Any] = {
        "model_version": version_name(today, digest),
        "parent_version": parent,
        "architecture": ARCHITECTURE,
        "outputs": OUTPUTS,
        "weights_file": out_path.name,
        "weights_sha256": digest,
        "trained_at": today.isoformat(timespec="seconds"),
        "training_seconds": round(training_seconds, 1),
        "fine_tuning": asdict(ft) | {"repeats": repeats},
        "temperature": round(temperature, 4),
        "trained_on": trained_on,
        "library_versions": library_versions(),
    }
    print("evaluating the candidate as served (LiteRT, int8) ...", flush=True)
    classifier = Classifier(save_litert(model, out_path, card), card)
    card.update(figures(classifier, data))
    write_card(out_path, card)
    return classifier, out_path.read_bytes()


def retrain(
    store: PredictionStore,
    registry: ModelRegistry,
    parent: ModelVersion,
    corrections: CorrectionSet,
    data: Mnist,
    ft: FineTuning,
    replay_last: int,
    progress: Callable[[str], None] = print,
    verbose: int = 2,
) -> ModelVersion:
    """Fine-tunes ``parent`` on ``corrections.train``, compares the candidate with it
    (MNIST test, ``corrections.held_out``, a replay of the last ``replay_last`` stored
    predictions) and registers it, not active, with the comparison in its card."""
    started = time.monotonic()
    trained_on = {
        "mnist": {"train_examples": min(ft.mnist_sample, 60_000 - ft.validation_size)},
        "corrections": corrections.summary(),
    }
    progress(f"reading the weights of {parent.version} from the registry")
    weights = registry.weights(parent.version)
    active = registry.load(parent.version)
    with tempfile.TemporaryDirectory(prefix="retrain-") as folder:
        candidate, candidate_weights = fine_tune(
            parent.version,
            weights,
            stack(corrections.train),
            data,
            ft,
            Path(folder) / "candidate.weights.h5",
            trained_on,
            verbose,
        )
    progress(f"replaying the last {replay_last} stored predictions")
    replay_ids, replay = replay_images(store, replay_last)
    progress(f"comparing {candidate.version} with {active.version}")
    comparison = compare(candidate, active, data, corrections.held_out, replay_ids, replay)
    card = {
        **candidate.card,
        "comparison": comparison,
        "retrain_seconds": round(time.monotonic() - started, 1),
    }
    registered = registry.register(
        card,
        candidate.litert,
        parent=parent.version,
        trained_on=trained_on,
        weights=candidate_weights,
    )
    progress(f"registered {registered.version}, not active, in {card['retrain_seconds']:.0f} s")
    return registered
