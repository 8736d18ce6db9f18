"""The model a process serves: the registry's active version, switched without a restart.

Each process registers the model it ships with (once; every worker may, the registry makes
it idempotent) and polls the active version in a background thread. When an operator
promotes or rolls back, the thread loads the new version's LiteRT file from the registry,
runs it once, and then swaps it in with one assignment: a batch already running finishes
on the model it started with, and the next one runs on the new model. While Cassandra is
down, the process keeps serving the model it has.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flaskandmnist.classifier import IMAGE_SHAPE, Classifier, Scores
from flaskandmnist.model_versions import ChecksumError, RegistryError
from flaskandmnist.registry import ModelRegistry
from flaskandmnist.storage import PredictionStore, StorageError, StoreConnector

logger = logging.getLogger(__name__)

#: Seconds between looks at the active version: every worker switches within about this.
POLL_S = 2.0


class ActiveModel:
    """Holds the classifier this process serves now; thread-safe.

    :meth:`start` registers the shipped model, switches to the active version and starts
    the poller; :meth:`close` stops it.
    """

    def __init__(
        self,
        shipped: Classifier,
        stores: StoreConnector,
        poll_s: float = POLL_S,
        shipped_weights: Path | None = None,
    ) -> None:
        self._shipped = shipped
        # Registered with the shipped model where they lie beside it (not in the container
        # image, which leaves them out): a retrain starts from them.
        self._shipped_weights = shipped_weights
        self._classifier = shipped
        self._stores = stores
        self._poll_s = poll_s
        self._registry: tuple[PredictionStore, ModelRegistry] | None = None
        self._registered = False
        self._last_problem: str | None = None
        # A version whose stored file was refused: not read again every poll.
        self._refused: str | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def current(self) -> Classifier:
        """The classifier to use now."""
        return self._classifier

    def predict(self, images: np.ndarray) -> Sequence[tuple[Scores, str]]:
        """Scores for each image, each with the version of the model that made it: one
        model answers the whole batch, even if a switch happens meanwhile."""
        classifier = self._classifier
        return [(scores, classifier.version) for scores in classifier.predict(images)]

    def start(self) -> None:
        """Switches to the active version now if this process is connected to Cassandra
        (so that the first requests get it), then polls it in the background."""
        self.sync()
        self._poller = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._poller.start()

    def sync(self) -> None:
        """Serves the registry's active version, loading it if it changed; on failure, logs
        why and keeps the current model."""
        try:
            self._sync()
        except (StorageError, RegistryError) as error:
            self._problem(str(error))
        except Exception:
            logger.exception("model registry: checking the active version failed")
        else:
            self._last_problem = None

    def _sync(self) -> None:
        # The recorder connects (at start, then its drainer or the requests): connecting
        # here too would try again every poll while Cassandra is down, holding up theirs.
        if (store := self._stores.current()) is None:
            raise StorageError("not connected to Cassandra yet")
        registry = self.registry_of(store)
        if not self._registered:
            try:
                registry.register(
                    self._shipped.card, self._shipped.litert, weights=self._weights_file()
                )
                registry.activate_first(self._shipped.version)
            except RegistryError as error:  # another file under its name: trying again won't do
                self._problem(f"the shipped model was not registered: {error}")
            self._registered = True
        active = registry.active()
        if active is None or active.version in (self._classifier.version, self._refused):
            return
        try:
            classifier = registry.load(active.version)
        except ChecksumError:
            self._refused = active.version
            raise
        # Tensors allocated and weights packed here, not on a request.
        classifier.predict(np.zeros((1, *IMAGE_SHAPE), np.float32))
        previous, self._classifier = self._classifier, classifier
        logger.info("model registry: now serving %s (was %s)", classifier.version, previous.version)

    def _weights_file(self) -> bytes | None:
        """The shipped weights, if they lie beside the model and are the ones its card names."""
        path = self._shipped_weights
        if path is None or not path.is_file():
            return None
        weights = path.read_bytes()
        if hashlib.sha256(weights).hexdigest() != self._shipped.card.get("weights_sha256"):
            logger.warning("model registry: %s is not the weights file the card names", path)
            return None
        return weights

    def registry_of(self, store: PredictionStore) -> ModelRegistry:
        """The registry on ``store``'s session, its statements prepared once per session."""
        # A new store (after a reconnection) has a new session: prepare on it.
        if self._registry is None or self._registry[0] is not store:
            self._registry = (store, ModelRegistry(store.session, store.keyspace))
        return self._registry[1]

    def _problem(self, message: str) -> None:
        # Once per problem, not every poll.
        if message != self._last_problem:
            serving = self._classifier.version
            logger.warning("model registry: %s; serving %s meanwhile", message, serving)
            self._last_problem = message

    def _poll(self) -> None:
        while not self._stop.wait(self._poll_s):
            self.sync()

    def close(self) -> None:
        """Stops the poller."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
