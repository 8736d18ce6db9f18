"""Corrections benchmark: how many corrections a retrain needs to learn a new style.

The style is the continental 1 (flaskandmnist/continental.py), which the shipped model
often reads as 7. For each count of corrections (--counts), the shipped weights are
fine-tuned as ``retrain`` does (flaskandmnist/retraining.py: the same sample of MNIST, the
negatives, the corrections repeated) on that many continental 1s labelled 1, drawn from
one half of the MNIST test 1s; each candidate is evaluated, as served, on continental 1s
drawn from the other half and on the MNIST test set. Prints a table with each retrain's
wall time (training, export and the model card's figures). Corrections here are arrays:
reading them from Cassandra is left out (tests/test_retrain.py runs the whole command).

    .venv/bin/python -m benchmarks.corrections [--counts 0,100,300,1000] [--epochs 2]
        [--mnist-sample 10000]

Needs requirements-train.txt and MNIST (MNIST_DIR).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from flaskandmnist import continental
from flaskandmnist.classifier import Classifier
from flaskandmnist.comparison import answers
from flaskandmnist.config import DEFAULT_MODEL_PATH, Settings
from flaskandmnist.evaluation import evaluate
from flaskandmnist.mnist import Mnist, load_mnist, to_float


def style_accuracy(classifier: Classifier, images: np.ndarray) -> float:
    return float(np.mean(np.array(answers(classifier, images)) == continental.LABEL))


def correction_pool(data: Mnist) -> np.ndarray:
    """Continental 1s to correct: the first half of the test 1s, each drawn twice (two
    flags), as the model sees them."""
    to_correct, _ = continental.indices(data)
    drawn = continental.pages(data, to_correct, seed=1) + continental.pages(data, to_correct, 3)
    return continental.model_inputs(drawn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="0,100,300,1000")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--mnist-sample", type=int, default=10_000)
    args = parser.parse_args()

    from flaskandmnist.retraining import FineTuning, fine_tune

    data = load_mnist(Settings.from_env().mnist_dir)
    shipped = Classifier.load(DEFAULT_MODEL_PATH)
    weights = DEFAULT_MODEL_PATH.read_bytes()
    pool = correction_pool(data)
    _, to_evaluate = continental.indices(data)
    held_out = continental.model_inputs(continental.pages(data, to_evaluate, seed=2))
    test_images = to_float(data.test_images)
    fine_tuning = FineTuning(epochs=args.epochs, mnist_sample=args.mnist_sample)
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
            None,
        )
    ]
    for count in (int(text) for text in args.counts.split(",")):
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
                seconds,
            )
        )
        print(f"{count} corrections: {seconds:.0f} s", flush=True)

    print(f"\n{'model':<22}{'repeats':>8}{'continental 1s':>16}{'MNIST test':>12}{'wall s':>8}")
    for name, repeats, style, mnist, seconds in rows:
        wall = "-" if seconds is None else f"{seconds:.0f}"
        print(f"{name:<22}{repeats:>8}{style:>16.2%}{mnist:>12.2%}{wall:>8}")


if __name__ == "__main__":
    main()
