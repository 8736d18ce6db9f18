"""Command line: ``python -m flaskandmnist {train,export,evaluate,predict,register,models,
promote,rollback,retrain} ...``.

``predict`` and ``evaluate`` run the LiteRT model with the serving requirements alone;
``train``, ``export`` and ``retrain`` import TensorFlow (requirements-train.txt) inside the
command. ``register``, ``models``, ``promote``, ``rollback`` and ``retrain`` work on the
model registry in Cassandra (flaskandmnist/registry.py): operator commands, never
reachable from the web.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from . import negatives
from .classifier import Classifier, ModelNotFoundError, card_path, litert_path, write_card
from .comparison import format_comparison
from .config import Settings
from .correction_set import RetrainError, read_corrections, starting_version
from .domain import SOURCES
from .evaluation import (
    calibration_error,
    evaluate,
    format_report,
    refusal_rate,
    refusal_table,
)
from .imaging import ImageError, mnist_to_png, to_mnist
from .mnist import Mnist, MnistError, load_mnist, to_float
from .model_versions import Activation, RegistryError
from .registry import ModelRegistry, open_registry
from .storage import PredictionStore, StorageError

#: What train, export and the robustness suite import beyond the serving requirements.
TRAINING_MODULES = frozenset({"tensorflow", "keras", "skimage"})


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from .training import HyperParameters, train

    overrides = {f.name: getattr(args, f.name, None) for f in fields(HyperParameters)}
    hp = HyperParameters(**{k: v for k, v in overrides.items() if v is not None})
    data = load_mnist(settings.mnist_dir, settings.mnist_download)
    out = args.out or settings.model_path
    print(f"training {hp.epochs} epochs on {settings.mnist_dir}, writing {out}", flush=True)
    card = train(data, out, hp)
    figures = ("model_version", "test_accuracy", "temperature", "test_calibration_error")
    print(json.dumps({k: card[k] for k in figures}, indent=2))
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from .model import export

    model_path = args.model or settings.model_path
    card = export(model_path)
    print(f"wrote {litert_path(model_path)} (sha256 {card['litert_sha256']})")
    return 0


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    model_path = args.model or settings.model_path
    classifier = Classifier.load(model_path)
    data = load_mnist(settings.mnist_dir, settings.mnist_download)
    started = time.monotonic()
    if args.suite:
        from . import suite

        per_slice = args.per_slice or None
        print(
            f"model {classifier.version}: robustness suite, "
            f"{per_slice or 'all 10,000'} MNIST test digits per slice, through the pipeline"
        )
        results = suite.run(classifier, data.test_images, data.test_labels, per_slice)
        print(suite.format_results(results))
        if args.update_card:
            card = classifier.card | {"robustness_suite": suite.card_figures(results)}
            write_card(model_path, card)
            print(f"wrote the suite's figures into {card_path(model_path)}")
    elif args.refusal_thresholds:
        from .training import HyperParameters, validation_examples

        print(f"model {classifier.version}: answers on the validation split by threshold")
        images, labels = validation_examples(data, HyperParameters())
        print(refusal_table(classifier.probabilities(images), labels))
    elif args.update_card:
        from .training import figures

        card = classifier.card | figures(classifier, data)
        write_card(model_path, card)
        print(json.dumps({k: v for k, v in card.items() if k.startswith(("test_", "held_"))}))
    elif args.negatives:
        print(f"model {classifier.version}: held-out negatives answered not a digit")
        for kind in negatives.KINDS:
            images = negatives.held_out(kind, data.test_images)
            refused = refusal_rate(classifier.probabilities(images))
            print(f"{kind:<10} {refused:7.2%} of {len(images)}")
    else:
        _report(args, classifier, model_path, data)
    print(f"\nevaluated in {time.monotonic() - started:.1f} s")
    return 0


def _report(
    args: argparse.Namespace, classifier: Classifier, model_path: Path, data: Mnist
) -> None:
    """Accuracy, confusion matrix and calibration error on the MNIST test set."""
    images = to_float(data.test_images)
    how = "as arrays"
    if args.through_pipeline:
        # What serving sees: each digit uploaded as a black-on-white PNG, then normalised.
        images = np.stack([to_mnist(mnist_to_png(1.0 - image)) for image in images])
        how = "as black-on-white PNGs through the image pipeline"
    result = evaluate(classifier, images, data.test_labels)
    title = f"model {classifier.version} ({model_path}) on the 10,000 MNIST test images, {how}"
    print(format_report(result, title))
    error = calibration_error(classifier.probabilities(images), data.test_labels)
    print(f"\nexpected calibration error: {error:.2%}")


def _predict(args: argparse.Namespace, settings: Settings) -> int:
    classifier = Classifier.load(args.model or settings.model_path)
    status = 0
    for path in args.images:
        try:
            image = to_mnist(
                path.read_bytes(),
                max_pixels=settings.max_image_pixels,
                max_bytes=settings.max_image_bytes,
            )
        except (OSError, ImageError) as exc:
            print(f"{path}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        prediction = classifier.predict_one(image)
        answer = "not a digit" if prediction.not_a_digit else prediction.digit
        print(f"{path}: {answer} (confidence {prediction.confidence:.1%})")
    return status


def _register(args: argparse.Namespace, settings: Settings) -> int:
    classifier = Classifier.load(args.model)
    # The weights, when they lie there too, are what a retrain starts from.
    weights = args.model.read_bytes() if args.model.is_file() else None
    with open_registry(settings.cassandra) as registry:
        registered = registry.register(
            classifier.card, classifier.litert, parent=args.parent, weights=weights
        )
    kept = "with its weights" if registered.weights_sha256 else "without weights"
    print(
        f"registered {registered.version} (sha256 {registered.litert_sha256}), {kept}; not active"
    )
    return 0


def _models(args: argparse.Namespace, settings: Settings) -> int:
    with open_registry(settings.cassandra) as registry:
        versions, active, history = registry.versions(), registry.active(), registry.history()
    active_version = active.version if active is not None else None
    print(f"{'':2}{'version':40} {'created (UTC)':17} {'MNIST test':>10}  parent")
    for v in versions:
        mark = "* " if v.version == active_version else "  "
        accuracy = f"{v.test_accuracy:.2%}" if v.test_accuracy is not None else "-"
        created = v.created_at.strftime("%Y-%m-%d %H:%M")
        print(f"{mark}{v.version:40} {created:17} {accuracy:>10}  {v.parent or '-'}")
        if comparison := v.card.get("comparison"):
            print("    " + format_comparison(comparison).replace("\n", "\n    "))
    print(f"\nactive: {active_version or 'none (start the web app once)'}")
    if history:
        print("history, newest first:")
        for activation in history:
            print(f"  {_activation_line(activation)}")
    return 0


def _activation_line(activation: Activation) -> str:
    when = activation.activated_at.strftime("%Y-%m-%d %H:%M:%S")
    back = f" (rollback goes to {activation.rollback_to})" if activation.rollback_to else ""
    return f"{when}  {activation.action:16} {activation.version}{back}"


def _promote(args: argparse.Namespace, settings: Settings) -> int:
    with open_registry(settings.cassandra) as registry:
        activation = registry.promote(args.version, force=args.force)
    print(f"active: {activation.version}; every worker switches within seconds")
    return 0


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    with open_registry(settings.cassandra) as registry:
        activation = registry.rollback()
    print(f"active: {activation.version}; every worker switches within seconds")
    return 0


def _retrain(args: argparse.Namespace, settings: Settings) -> int:
    store = PredictionStore.connect(settings.cassandra)
    try:
        registry = ModelRegistry(store.session, store.keyspace)
        parent = starting_version(registry)
        print(f"reading the stored corrections (starting from {parent.version})", flush=True)
        corrections = read_corrections(
            store, args.holdout_share, args.exclude_day, args.exclude_source
        )
        summary = corrections.summary()
        print(json.dumps(summary), flush=True)
        if not corrections.train:
            raise RetrainError(
                f"no corrections to learn from ({summary['held_out']} held back for "
                f"evaluation, {summary['excluded']} excluded, {summary['unusable']} "
                "unusable): correct some answers first"
            )
        data = load_mnist(settings.mnist_dir, settings.mnist_download)
        from .retraining import FineTuning, retrain

        overrides = {"epochs": args.epochs, "mnist_sample": args.mnist_sample}
        fine_tuning = FineTuning(**{k: v for k, v in overrides.items() if v is not None})
        registered = retrain(
            store, registry, parent, corrections, data, fine_tuning, args.replay_last
        )
    finally:
        store.close()
    print(format_comparison(registered.card["comparison"]))
    print(f"\npromote it with: scripts/run.sh promote {registered.version}")
    return 0


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flaskandmnist")
    commands = parser.add_subparsers(dest="command", required=True)

    train_cmd = commands.add_parser("train", help="train the model and write its model card")
    train_cmd.add_argument("--out", type=Path, help="weights file (default: MODEL_PATH)")
    for name, kind in (
        ("epochs", int),
        ("batch_size", int),
        ("learning_rate", float),
        ("warmup_epochs", int),
        ("label_smoothing", float),
        ("seed", int),
        ("validation_size", int),
        ("warm_start", str),
        ("redrawn_share", float),
    ):
        train_cmd.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
    train_cmd.set_defaults(handler=_train)

    export_cmd = commands.add_parser(
        "export", help="write the LiteRT model the service runs, for existing weights"
    )
    export_cmd.add_argument("--model", type=Path, help="weights file (default: MODEL_PATH)")
    export_cmd.set_defaults(handler=_export)

    eval_cmd = commands.add_parser("evaluate", help="accuracy and confusion matrix on MNIST test")
    eval_cmd.add_argument("--model", type=Path, help="weights file (default: MODEL_PATH)")
    eval_cmd.add_argument(
        "--through-pipeline",
        action="store_true",
        help="send each test digit as a PNG file through the serving image pipeline",
    )
    eval_cmd.add_argument(
        "--suite",
        action="store_true",
        help="accuracy per slice of the robustness suite (needs requirements-train.txt)",
    )
    eval_cmd.add_argument(
        "--per-slice",
        type=int,
        default=0,
        help="test digits per slice of the suite, a seeded sample (default 0: all 10,000)",
    )
    eval_cmd.add_argument(
        "--negatives",
        action="store_true",
        help="how many held-out dots, lines, scribbles, letters ... are refused",
    )
    eval_cmd.add_argument(
        "--refusal-thresholds",
        action="store_true",
        help="how the validation split's digits and negatives are answered at each "
        "threshold for refusing (the data for choosing REFUSE_PROBABILITY)",
    )
    eval_cmd.add_argument(
        "--update-card",
        action="store_true",
        help="measure the model card's figures again and write them into the card (after a "
        "change to how answers are read from the model's probabilities); with --suite, "
        "write the suite's figures per slice into the card",
    )
    eval_cmd.set_defaults(handler=_evaluate)

    predict_cmd = commands.add_parser("predict", help="name the digit in each image file")
    predict_cmd.add_argument("images", type=Path, nargs="+", help="PNG, JPEG, GIF, BMP, WebP")
    predict_cmd.add_argument("--model", type=Path, help="weights file (default: MODEL_PATH)")
    predict_cmd.set_defaults(handler=_predict)

    register_cmd = commands.add_parser(
        "register", help="store a trained model in the registry (Cassandra), not active"
    )
    register_cmd.add_argument(
        "model", type=Path, help="weights file; its card and LiteRT model lie beside it"
    )
    register_cmd.add_argument("--parent", help="the version it was made from")
    register_cmd.set_defaults(handler=_register)

    models_cmd = commands.add_parser("models", help="registered versions and the active one")
    models_cmd.set_defaults(handler=_models)

    promote_cmd = commands.add_parser(
        "promote", help="make a registered version active in every running app"
    )
    promote_cmd.add_argument("version")
    promote_cmd.add_argument(
        "--force", action="store_true", help="even if its MNIST test accuracy is lower"
    )
    promote_cmd.set_defaults(handler=_promote)

    rollback_cmd = commands.add_parser(
        "rollback", help="make the version active before the current one active again"
    )
    rollback_cmd.set_defaults(handler=_rollback)

    retrain_cmd = commands.add_parser(
        "retrain",
        help="fine-tune the active version on the stored corrections; register it, not active",
    )
    retrain_cmd.add_argument(
        "--exclude-day",
        type=dt.date.fromisoformat,
        action="append",
        default=[],
        metavar="YYYY-MM-DD",
        help="leave out the corrections of predictions made on this UTC day (repeatable)",
    )
    retrain_cmd.add_argument(
        "--exclude-source",
        choices=sorted(SOURCES),
        action="append",
        default=[],
        help="leave out the corrections of predictions from this entry point (repeatable)",
    )
    retrain_cmd.add_argument(
        "--holdout-share",
        type=_share,
        default=0.2,
        help="share of the corrections held back to compare the models (by prediction id)",
    )
    retrain_cmd.add_argument("--epochs", type=_positive)
    retrain_cmd.add_argument(
        "--mnist-sample", type=_positive, help="MNIST training digits mixed in"
    )
    retrain_cmd.add_argument(
        "--replay-last",
        type=int,
        default=1000,
        metavar="N",
        help="replay the last N stored predictions with both models",
    )
    retrain_cmd.set_defaults(handler=_retrain)

    args = parser.parse_args(argv)
    try:
        return args.handler(args, Settings.from_env())
    except (MnistError, ModelNotFoundError, RegistryError, RetrainError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name not in TRAINING_MODULES:
            raise
        print(
            f"error: {args.command} needs TensorFlow, which serving does not install: "
            "install requirements-train.txt (scripts/run.sh does)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
