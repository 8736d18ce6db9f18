"""Command line: ``python -m flaskandmnist {train,evaluate} ...``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

from .config import Settings
from .mnist import MnistError, load_mnist


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from .training import HyperParameters, train

    overrides = {f.name: getattr(args, f.name, None) for f in fields(HyperParameters)}
    hp = HyperParameters(**{k: v for k, v in overrides.items() if v is not None})
    data = load_mnist(settings.mnist_dir, settings.mnist_download)
    out = args.out or settings.model_path
    print(f"training {hp.epochs} epochs on {settings.mnist_dir}, writing {out}", flush=True)
    card = train(data, out, hp)
    print(json.dumps({k: card[k] for k in ("model_version", "test_accuracy")}, indent=2))
    return 0


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from .evaluation import evaluate, format_report
    from .model import Classifier
    from .training import to_float

    model_path = args.model or settings.model_path
    classifier = Classifier.load(model_path)
    data = load_mnist(settings.mnist_dir, settings.mnist_download)
    started = time.monotonic()
    result = evaluate(classifier, to_float(data.test_images), data.test_labels)
    title = f"model {classifier.version} ({model_path}) on the 10,000 MNIST test images"
    print(format_report(result, title))
    print(f"\nevaluated in {time.monotonic() - started:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flaskandmnist")
    commands = parser.add_subparsers(dest="command", required=True)

    train_cmd = commands.add_parser("train", help="train the model and write its model card")
    train_cmd.add_argument("--out", type=Path, help="weights file (default: MODEL_PATH)")
    for name, kind in (
        ("epochs", int),
        ("batch_size", int),
        ("learning_rate", float),
        ("seed", int),
        ("validation_size", int),
    ):
        train_cmd.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
    train_cmd.set_defaults(handler=_train)

    eval_cmd = commands.add_parser("evaluate", help="accuracy and confusion matrix on MNIST test")
    eval_cmd.add_argument("--model", type=Path, help="weights file (default: MODEL_PATH)")
    eval_cmd.set_defaults(handler=_evaluate)

    args = parser.parse_args(argv)
    try:
        return args.handler(args, Settings.from_env())
    except MnistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
