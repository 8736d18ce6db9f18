"""The service with persistence switched off, for ``benchmarks.load --without-persistence``.

It measures the most the web tier (gunicorn, Flask, the image pipeline, the model) can do
on a machine, for comparison with the real service: predictions are answered and counted
but stored nowhere. Never deploy it.

    gunicorn --config python:flaskandmnist.gunicorn_conf "benchmarks.ceiling:create_app()"
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Flask

from flaskandmnist import metrics
from flaskandmnist.config import Settings
from flaskandmnist.domain import Prediction
from flaskandmnist.recorder import Recorder
from flaskandmnist.web import create_app as create_service


def _count_only(self: Recorder, predictions: Sequence[Prediction]) -> None:
    metrics.count_predictions(predictions)


def create_app(settings: Settings | None = None) -> Flask:
    Recorder.record_many = _count_only  # type: ignore[method-assign]
    return create_service(settings)
