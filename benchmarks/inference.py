"""Benchmark in-process inference: the classifier alone and the whole image pipeline.

Prints single-image latency (p50/p99) and batched throughput for
  1. the classifier on ready 28x28 arrays, and
  2. decode + normalise + predict, from the image in each workload's request
     (benchmarks/bodies.py: the drawing pad's post, a phone photo, a scan, MNIST's PNG).

Run from the repository root:  .venv/bin/python -m benchmarks.inference
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from benchmarks.bodies import WORKLOADS, Body, make_body
from flaskandmnist.classifier import Classifier
from flaskandmnist.config import Settings
from flaskandmnist.imaging import to_mnist
from flaskandmnist.mnist import load_mnist, to_float
from flaskandmnist.model import build_model
from flaskandmnist.web.uploads import decode_image_text


def latencies_ms(call: Callable[[int], object], runs: int) -> np.ndarray:
    """Time ``call(i)`` for i in range(runs), in milliseconds."""
    times = np.empty(runs)
    for i in range(runs):
        started = time.perf_counter()
        call(i)
        times[i] = (time.perf_counter() - started) * 1000
    return times


def throughput(call: Callable[[], object], items: int, seconds: float) -> float:
    """Items per second of ``call`` (which handles ``items`` items) over about ``seconds``."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call()
        done += items
    return done / (time.perf_counter() - started)


def image_bytes(body: Body) -> bytes:
    """The image file in a request body, as the API reads it."""
    if body.content_type == "application/json":
        return decode_image_text(json.loads(body.data)["image"])
    return body.data


def report(name: str, times: np.ndarray) -> None:
    p50, p99 = np.percentile(times, [50, 99])
    print(f"{name:<50} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({len(times)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="single-image calls per figure")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per throughput figure")
    args = parser.parse_args()

    settings = Settings.from_env()
    started = time.perf_counter()
    classifier = Classifier.load(settings.model_path)
    classifier.predict_one(np.zeros((28, 28), np.float32))  # allocate and pack once
    print(f"model {classifier.version}: ready in {time.perf_counter() - started:.2f} s")
    data = load_mnist(settings.mnist_dir)
    images = to_float(data.test_images)
    n = len(images)

    print("\n1. classifier on 28x28 arrays")
    report("single image", latencies_ms(lambda i: classifier.predict_one(images[i % n]), args.runs))
    keras_model = build_model()
    keras_model.load_weights(settings.model_path)
    report(
        "single image with keras model.predict (baseline)",
        latencies_ms(lambda i: keras_model.predict(images[i % n][None], verbose=0), 100),
    )
    for batch in (32, 256):
        rate = throughput(lambda b=batch: classifier.predict(images[:b]), batch, args.seconds)
        print(f"{f'batches of {batch}':<50} {rate:9.0f} images/s")

    print("\n2. whole pipeline: each workload's image -> decode -> normalise -> predict")
    for workload in WORKLOADS:
        count = 20 if workload == "photo" else 200
        uploads = [image_bytes(make_body(workload, digit)) for digit in data.test_images[:count]]
        size = np.mean([len(u) for u in uploads])

        def one(i: int, uploads: list[bytes] = uploads) -> None:
            classifier.predict_one(to_mnist(uploads[i % len(uploads)]))

        runs = min(args.runs, 100) if workload == "photo" else args.runs
        report(f"{workload} ({size:,.0f} bytes)", latencies_ms(one, runs))


if __name__ == "__main__":
    main()
