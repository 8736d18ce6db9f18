"""Corrections benchmark: how many corrections a retrain needs to learn a new style.

The style is the continental 1 (flaskandmnist/continental.py), which the shipped model
often reads as 7. For each count of corrections (--counts), the shipped weights are
fine-tuned as ``retrain`` does (flaskandmnist/retraining.py: the same sample of MNIST, the
negatives, the corrections repeated) on that many continental 1s labelled 1, drawn from
one half of the MNIST test 1s; each candidate is evaluated, as served, on continental 1s
drawn from the other half and on the MNIST test set. Prints a table with each retrain's
wall time (training, export and the model card's figures). Corrections here are arrays,
not read from Cassandra.

With ``--command N`` it times the whole operator command instead: it starts a Cassandra
node (scripts/cassandra.py, in a temporary folder), stores N continental 1s as predictions
with a correction each, registers the shipped model with its weights, and runs
``python -m flaskandmnist retrain`` with its defaults (reading the corrections, the
fine-tune, the figures, the replay and the comparison, registering the candidate).

    .venv/bin/python -m benchmarks.corrections [--counts 0,100,300,1000] [--epochs 1]
        [--mnist-sample 10000]
    .venv/bin/python -m benchmarks.corrections --command 3000

Needs requirements-train.txt and MNIST (MNIST_DIR); --command also Java 17 and Maven.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.fault import Node
from benchmarks.load import free_port
from flaskandmnist import continental
from flaskandmnist.classifier import Classifier
from flaskandmnist.comparison import answers
from flaskandmnist.config import DEFAULT_MODEL_PATH, Settings
from flaskandmnist.domain import Prediction
from flaskandmnist.evaluation import evaluate
from flaskandmnist.imaging import mnist_to_png
from flaskandmnist.mnist import Mnist, load_mnist, to_float
from flaskandmnist.registry import ModelRegistry
from flaskandmnist.retraining import FineTuning, fine_tune
from flaskandmnist.storage import PredictionStore

REPO_ROOT = Path(__file__).resolve().parent.parent


def style_accuracy(classifier: Classifier, images: np.ndarray) -> float:
    return float(np.mean(np.array(answers(classifier, images)) == continental.LABEL))


def negatives_refused(classifier: Classifier) -> float:
    """The share of the held-out "not a digit" negatives (all kinds together) refused, as
    the model card records it per kind."""
    return float(np.mean(list(classifier.card["held_out_negatives_refused"].values())))


def correction_pages(data: Mnist, count: int) -> list[np.ndarray]:
    """``count`` continental 1s to correct: the first half of the test 1s, each drawn as
    often as needed with another flag."""
    to_correct, _ = continental.indices(data)
    drawn: list[np.ndarray] = []
    for seed in range(1, 2 + count // len(to_correct)):
        drawn += continental.pages(data, to_correct, seed=seed * 7)
    return drawn[:count]


def stored_corrections(env: dict[str, str], data: Mnist, count: int) -> None:
    """``count`` continental 1s stored as predictions of the shipped model, each corrected
    to 1, and the shipped model registered with its weights and active."""
    shipped = Classifier.load(DEFAULT_MODEL_PATH)
    pages = correction_pages(data, count)
    inputs = continental.model_inputs(pages)
    scores = shipped.predict(inputs)
    store = PredictionStore.connect(Settings.from_env(env).cassandra)
    try:
        registry = ModelRegistry(store.session, store.keyspace)
        registry.register(shipped.card, shipped.litert, weights=DEFAULT_MODEL_PATH.read_bytes())
        registry.activate_first(shipped.version)
        predictions = [
            Prediction.create(
                source="api",
                image=continental.png(page),
                content_type="image/png",
                filename="",
                model_input_png=mnist_to_png(image),
                digit=s.digit,
                confidence=s.confidence,
                probabilities=s.probabilities,
                model_version=shipped.version,
                processing_ms=0.0,
                not_a_digit=s.not_a_digit,
            )
            for page, image, s in zip(pages, inputs, scores, strict=True)
        ]
        for start in range(0, count, 100):
            store.save_many(predictions[start : start + 100])
        for prediction in predictions:
            store.save_correction(prediction.id, continental.LABEL)
    finally:
        store.close()


def time_command(data: Mnist, count: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="retrain-"))
    node = Node(work / "cassandra", free_port())
    env = {
        **os.environ,
        "CASSANDRA_CONTACT_POINTS": "127.0.0.1",
        "CASSANDRA_PORT": str(node.port),
        "CASSANDRA_KEYSPACE": f"retrain_{time.strftime('%Y%m%d_%H%M%S')}",
    }
    node.start()
    try:
        subprocess.run([sys.executable, "csd.py"], check=True, cwd=REPO_ROOT, env=env)
        stored_corrections(env, data, count)
        print(f"{count} corrections stored; running retrain", flush=True)
        started = time.monotonic()
        command = [sys.executable, "-m", "flaskandmnist", "retrain"]
        subprocess.run(command, check=True, env=env, cwd=REPO_ROOT)
        print(f"\nretrain with {count} corrections: {time.monotonic() - started:.0f} s wall")
    finally:
        node.stop()
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="0,100,300,1000")
    parser.add_argument("--epochs", type=int, default=FineTuning.epochs)
    parser.add_argument("--mnist-sample", type=int, default=FineTuning.mnist_sample)
    parser.add_argument("--learning-rate", type=float, default=FineTuning.learning_rate)
    parser.add_argument("--command", type=int, metavar="N", help="time `retrain` instead")
    args = parser.parse_args()
    if args.command:
        time_command(load_mnist(Settings.from_env().mnist_dir), args.command)
        return

    data = load_mnist(Settings.from_env().mnist_dir)
    shipped = Classifier.load(DEFAULT_MODEL_PATH)
    weights = DEFAULT_MODEL_PATH.read_bytes()
    counts = [int(text) for text in args.counts.split(",")]
    pool = continental.model_inputs(correction_pages(data, max(counts)))
    _, to_evaluate = continental.indices(data)
    held_out = continental.model_inputs(continental.pages(data, to_evaluate, seed=2))
    test_images = to_float(data.test_images)
    fine_tuning = FineTuning(
        epochs=args.epochs, mnist_sample=args.mnist_sample, learning_rate=args.learning_rate
    )
    print(
        f"{len(held_out)} continental 1s to evaluate, {len(pool)} to correct; {fine_tuning}",
        flush=True,
    )

    rows = [
        (
            "shipped",
            "-",
            style_accuracy(shipped, held_out),
            evaluate(shipped, test_images, data.test_labels).accuracy,
            negatives_refused(shipped),
            None,
        )
    ]
    for count in counts:
        chosen = np.random.default_rng(count).choice(len(pool), count, replace=False)
        corrections = (pool[chosen], np.full(count, continental.LABEL, np.int32))
        with tempfile.TemporaryDirectory() as folder:
            started = time.monotonic()
            candidate, _ = fine_tune(
                "shipped",
                weights,
                corrections,
                data,
                fine_tuning,
                Path(folder) / "candidate.weights.h5",
                {"corrections": count},
                verbose=0,
            )
            seconds = time.monotonic() - started
        rows.append(
            (
                f"retrained on {count}",
                str(fine_tuning.repeats(count)),
                style_accuracy(candidate, held_out),
                candidate.card["test_accuracy"],
                negatives_refused(candidate),
                seconds,
            )
        )
        print(f"{count} corrections: {seconds:.0f} s", flush=True)

    print(
        f"\n{'model':<22}{'repeats':>8}{'continental 1s':>16}{'MNIST test':>12}"
        f"{'negatives refused':>19}{'wall s':>8}"
    )
    for name, repeats, style, mnist, refused, seconds in rows:
        wall = "-" if seconds is None else f"{seconds:.0f}"
        print(f"{name:<22}{repeats:>8}{style:>16.2%}{mnist:>12.2%}{refused:>19.2%}{wall:>8}")


if __name__ == "__main__":
    main()
