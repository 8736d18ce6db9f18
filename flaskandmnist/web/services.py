"""What the views use, built once per app: settings, the active model, the recognizer, the
recorder and the Cassandra store they share.

:meth:`Services.build` is the one place these are made and started; :func:`close_app` is the
one way to stop them (gunicorn's ``worker_exit`` hook calls it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from flask import Flask, current_app

from flaskandmnist.active_model import ActiveModel
from flaskandmnist.classifier import IMAGE_SHAPE, Classifier
from flaskandmnist.config import Settings
from flaskandmnist.domain import Prediction, UnknownPrediction, unknown_message
from flaskandmnist.recognition import Recognizer
from flaskandmnist.recorder import Recorder
from flaskandmnist.registry import ModelRegistry
from flaskandmnist.storage import PredictionStore, StoreConnector

from .params import parse_prediction_id

EXTENSION = "flaskandmnist"


@dataclass(frozen=True)
class Services:
    settings: Settings
    model: ActiveModel
    recognizer: Recognizer
    recorder: Recorder
    stores: StoreConnector

    @classmethod
    def build(cls, settings: Settings, classifier: Classifier) -> Services:
        """The services for ``settings``, started: connected to Cassandra (or trying to,
        through the outbox drainer) and with the model ready for the first request: the
        registry's active version if Cassandra answers, else ``classifier`` (the shipped
        model, which registers itself) until it does."""
        # The first call allocates the interpreter's tensors and packs the weights: at
        # start-up, not on a request.
        classifier.predict(np.zeros((1, *IMAGE_SHAPE), np.float32))
        stores = StoreConnector(settings.cassandra)
        recorder = Recorder(settings, stores)
        recorder.start()
        model = ActiveModel(classifier, stores, shipped_weights=settings.model_path)
        model.start()
        recognizer = Recognizer(model, settings, recorder)
        return cls(settings, model, recognizer, recorder, stores)

    @property
    def classifier(self) -> Classifier:
        """The model this process serves now."""
        return self.model.current()

    @property
    def store(self) -> PredictionStore:
        """This process's store, connected on first use (raises StorageError if it cannot)."""
        return self.stores.get()

    @property
    def registry(self) -> ModelRegistry:
        """The model registry, on this process's store (raises StorageError if it cannot
        connect)."""
        return self.model.registry_of(self.store)

    def prediction(self, prediction_id: str | uuid.UUID) -> Prediction:
        """The stored prediction with this id (as a URL gives it); UnknownPrediction
        (answered 404) if none, or if the text is no prediction id."""
        if (found := self.store.get(parse_prediction_id(str(prediction_id)))) is None:
            raise UnknownPrediction(unknown_message(prediction_id))
        return found

    def close(self) -> None:
        """Replays what the outbox holds while Cassandra takes it, then closes the session.

        The model poller and the recorder go first: they use the session."""
        self.model.close()
        self.recorder.close()
        self.stores.close()


def services() -> Services:
    """The current app's services."""
    return current_app.extensions[EXTENSION]


def close_app(app: Flask) -> None:
    """Stops what ``create_app`` started for ``app`` (the outbox drainer, the session)."""
    app.extensions[EXTENSION].close()
