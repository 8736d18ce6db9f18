"""The service's one use case: image bytes in, a stored prediction out.

Every entry point (JSON API, HTML pages, the seeds' compatibility routes) goes through
:class:`Recognizer`, so each image is decoded, classified and persisted the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from flaskandmnist.active_model import ActiveModel
from flaskandmnist.batching import MicroBatcher
from flaskandmnist.config import Settings
from flaskandmnist.domain import Prediction
from flaskandmnist.imaging import ImageError, load_image, mnist_to_png, to_mnist_image
from flaskandmnist.recorder import Recorder

#: Stored when Pillow knows no MIME type for a format it read.
UNKNOWN_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class Upload:
    """An image as a client sent it: the bytes, the filename it gave, and the entry point."""

    data: bytes
    filename: str = ""
    source: str = "api"


@dataclass(frozen=True)
class _Prepared:
    upload: Upload
    content_type: str
    array: np.ndarray
    started: float


class Recognizer:
    """Decodes, classifies and stores uploads; one per app, safe to share between threads."""

    def __init__(
        self,
        model: ActiveModel,
        settings: Settings,
        recorder: Recorder,
    ) -> None:
        # Concurrent requests of this process share model calls (flaskandmnist/batching.py);
        # each score comes with the version that made it (the model may switch meanwhile).
        self._classify = MicroBatcher(model.predict)
        self._settings = settings
        self._recorder = recorder

    def recognise(self, upload: Upload) -> Prediction:
        """The stored prediction for one upload, which may say the image holds no single
        digit (``not_a_digit``); raises ImageError or StorageError."""
        result = self.recognise_many([upload])[0]
        if isinstance(result, ImageError):
            raise result
        return result

    def recognise_many(self, uploads: Sequence[Upload]) -> list[Prediction | ImageError]:
        """One result per upload, in order: its stored prediction, or why its image was
        refused. All good images go through the model in one call, and all predictions
        are recorded together: stored in Cassandra, or durably queued in the outbox. Raises
        StorageError when they can be neither."""
        prepared: list[_Prepared | ImageError] = [self._prepare(upload) for upload in uploads]
        good = [p for p in prepared if isinstance(p, _Prepared)]
        scores_of_good = iter(self._classify(np.stack([p.array for p in good])) if good else [])
        results: list[Prediction | ImageError] = []
        for item in prepared:
            if isinstance(item, ImageError):
                results.append(item)
                continue
            scores, model_version = next(scores_of_good)
            prediction = Prediction.create(
                source=item.upload.source,
                image=item.upload.data,
                content_type=item.content_type,
                filename=item.upload.filename,
                model_input_png=mnist_to_png(item.array),
                digit=scores.digit,
                confidence=scores.confidence,
                probabilities=scores.probabilities,
                model_version=model_version,
                processing_ms=(time.perf_counter() - item.started) * 1000,
                not_a_digit=scores.not_a_digit,
            )
            results.append(prediction)
        self._recorder.record_many([r for r in results if isinstance(r, Prediction)])
        return results

    def _prepare(self, upload: Upload) -> _Prepared | ImageError:
        started = time.perf_counter()
        try:
            image = load_image(
                upload.data,
                max_pixels=self._settings.max_image_pixels,
                max_bytes=self._settings.max_image_bytes,
            )
            array = to_mnist_image(image)
        except ImageError as error:
            return error
        # The type Pillow recognised in the bytes, not what the client declared.
        content_type = Image.MIME.get(image.format or "", UNKNOWN_CONTENT_TYPE)
        return _Prepared(upload, content_type, array, started)
