"""What the views use, built once per app: settings, the classifier and the recognizer.

The Cassandra session itself belongs to :mod:`flaskandmnist.storage` (one per process and
settings); the app only says which settings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from flask import current_app

from flaskandmnist.classifier import IMAGE_SHAPE, Classifier
from flaskandmnist.config import Settings
from flaskandmnist.recognition import Recognizer
from flaskandmnist.recorder import Recorder
from flaskandmnist.storage import (
    Prediction,
    PredictionStore,
    UnknownPrediction,
    get_store,
    unknown_message,
)

from .params import parse_prediction_id

EXTENSION = "flaskandmnist"


@dataclass(frozen=True)
class Services:
    settings: Settings
    classifier: Classifier
    recognizer: Recognizer
    recorder: Recorder

    @classmethod
    def build(cls, settings: Settings, classifier: Classifier) -> Services:
        # The first call allocates the interpreter's tensors and packs the weights (several
        # milliseconds): at start-up, not on a request.
        classifier.predict(np.zeros((1, *IMAGE_SHAPE), np.float32))
        recorder = Recorder(settings)
        return cls(settings, classifier, Recognizer(classifier, settings, recorder), recorder)

    @property
    def store(self) -> PredictionStore:
        """This process's store, connected on first use (raises StorageError if it cannot)."""
        return get_store(self.settings.cassandra)

    def prediction(self, prediction_id: str | uuid.UUID) -> Prediction:
        """The stored prediction with this id (as a URL gives it); UnknownPrediction
        (answered 404) if none, or if the text is no prediction id."""
        if (found := self.store.get(parse_prediction_id(str(prediction_id)))) is None:
            raise UnknownPrediction(unknown_message(prediction_id))
        return found


def services() -> Services:
    """The current app's services."""
    return current_app.extensions[EXTENSION]
