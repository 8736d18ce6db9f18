"""Stored predictions as files to download: a CSV, or a ZIP of the CSV and the images.

Both are generators of bytes that read Cassandra a page at a time as the response is sent,
so an export of a large day never sits in memory. A prediction deleted while an export runs
is left out of it once its image row is gone.
"""

from __future__ import annotations

import csv
import io
import itertools
import mimetypes
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

from flaskandmnist.domain import PredictionSummary
from flaskandmnist.storage import PredictionStore

from .params import ExportQuery

COLUMNS = (
    "id",
    "created_at",
    "digit",
    "not_a_digit",
    "confidence",
    "true_digit",
    "source",
    "filename",
    "content_type",
    "image_size",
    "model_version",
)
#: Extra columns of the ZIP's CSV: where each prediction's files lie in the archive.
FILE_COLUMNS = ("image_file", "input_file")
#: Predictions whose original images are read from Cassandra at once for the ZIP: enough to
#: keep Cassandra busy, few enough that their images (MAX_IMAGE_BYTES each) fit in memory.
IMAGE_READS = 8
#: The CSV inside a ZIP is kept in memory up to this size, then in a temporary file.
_CSV_SPOOL_BYTES = 1024 * 1024
_COPY_CHARS = 64 * 1024
_T = TypeVar("_T")
#: Characters that make a spreadsheet read a cell as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    # A client chose the filename: "=HYPERLINK(...)" must stay text in a spreadsheet.
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _rows(
    store: PredictionStore, query: ExportQuery
) -> Iterator[tuple[PredictionSummary, int | None]]:
    """The predictions asked for, newest first, each with the true digit a person gave."""
    for day in [query.day] if query.day else store.days():
        true_digits = store.day_true_digits(day)
        for summary in store.summaries(day, query.digit):
            yield summary, true_digits.get(summary.id)


def _record(summary: PredictionSummary, true_digit: int | None) -> list[object]:
    return [
        _cell(value)
        for value in (
            summary.id,
            summary.created_at.isoformat().replace("+00:00", "Z"),
            summary.digit,
            summary.not_a_digit,
            summary.confidence,
            "" if true_digit is None else true_digit,
            summary.source,
            summary.filename,
            summary.content_type,
            summary.image_size,
            summary.model_version,
        )
    ]


class _Buffer(io.RawIOBase):
    """A write-only stream whose bytes are taken out as they come: the ZIP writer's output,
    which the response sends while the archive is still being written."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def csv_chunks(store: PredictionStore, query: ExportQuery) -> Iterator[bytes]:
    """The CSV (header and one line per prediction), as UTF-8 chunks."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    for chunk in _batches(_rows(store, query), 256):
        writer.writerows(_record(*row) for row in chunk)
        yield text.getvalue().encode()
        text.seek(0)
        text.truncate()
    if text.getvalue():
        yield text.getvalue().encode()


def _extension(content_type: str) -> str:
    return mimetypes.guess_extension(content_type) or ".bin"


def zip_chunks(store: PredictionStore, query: ExportQuery) -> Iterator[bytes]:
    """A ZIP: ``images/<id>.<ext>`` (the original images), ``inputs/<id>.png`` (the 28x28
    images the model saw) and last ``predictions.csv``, which lists exactly the predictions
    whose images the archive holds."""
    buffer = _Buffer()
    with (
        tempfile.SpooledTemporaryFile(_CSV_SPOOL_BYTES, mode="w+t", newline="") as table,
        zipfile.ZipFile(buffer, "w") as archive,
    ):
        writer = csv.writer(table)
        writer.writerow((*COLUMNS, *FILE_COLUMNS))
        for chunk in _batches(_rows(store, query), IMAGE_READS):
            predictions = store.get_many([summary.id for summary, _ in chunk])
            for (summary, true_digit), prediction in zip(chunk, predictions, strict=True):
                if prediction is None:  # deleted since the listing row was read
                    continue
                image_file = f"images/{summary.id}{_extension(prediction.content_type)}"
                input_file = f"inputs/{summary.id}.png"
                # Images are compressed already; storing them costs no space and no CPU.
                archive.writestr(image_file, prediction.image)
                archive.writestr(input_file, prediction.model_input_png)
                writer.writerow([*_record(summary, true_digit), image_file, input_file])
            yield buffer.take()
        _copy_text(table, archive, "predictions.csv")
        yield buffer.take()
    yield buffer.take()  # the central directory, written on close


def _copy_text(source: IO[str], archive: zipfile.ZipFile, name: str) -> None:
    source.seek(0)
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    # Its size is not known ahead: ZIP64 fields, should it pass 2 GiB.
    with archive.open(info, "w", force_zip64=True) as entry:
        while block := source.read(_COPY_CHARS):
            entry.write(block.encode())


def _batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
