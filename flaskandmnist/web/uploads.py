"""Images out of requests: multipart files, JSON with base64 or data URIs, raw bodies and
the seeds' form-encoded data URIs. Malformed requests raise ApiError (400/415)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Request, request

from flaskandmnist.domain import SOURCES
from flaskandmnist.recognition import Upload

from .errors import ApiError

#: Content types of a raw image body (the bytes are sniffed anyway; the type only routes).
RAW_TYPES = ("image/", "application/octet-stream")
ACCEPTED = "multipart/form-data (field 'file'), application/json ({\"image\": ...}) or image/*"


def decode_image_text(text: Any, what: str = "image") -> bytes:
    """Bytes of a ``data:<type>;base64,...`` URI or of plain base64 text."""
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "missing_image", f"'{what}' must be a non-empty base64 or data URI.")
    payload = text.strip()
    if payload.startswith("data:"):
        header, comma, payload = payload.partition(",")
        if not comma or not header.endswith(";base64"):
            raise ApiError(
                400,
                "bad_data_uri",
                f"'{what}' must be a base64 data URI like data:image/png;base64,iVBOR...",
            )
    # Line breaks and missing padding are common in the wild and harmless.
    payload = "".join(payload.split())
    payload += "=" * (-len(payload) % 4)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_base64", f"'{what}' is not valid base64.") from None
    if not data:
        raise ApiError(400, "missing_image", f"'{what}' decodes to no bytes.")
    return data


def _source(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or value not in SOURCES:  # [] is not hashable
        raise ApiError(400, "bad_source", f"'source' must be one of {', '.join(sorted(SOURCES))}.")
    return value


def parsed_json(request: Request) -> Any:
    """The request's JSON; None when it is not JSON, not valid or nested too deeply."""
    try:
        return request.get_json(silent=True)
    except RecursionError:  # what json raises, rather than ValueError, for [[[[...]]]]
        return None


def _json_body(request: Request) -> dict[str, Any]:
    body = parsed_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "The body must be a JSON object.")
    return body


def _json_upload(item: Any, source: str, label: str = "") -> Upload:
    """``"<base64>"`` or ``{"image": "<base64>", "filename": "..."}`` as an Upload; ``label``
    names the item in error messages (``""`` for the body itself)."""
    if isinstance(item, dict):
        prefix = f"{label}." if label else ""
        filename = item.get("filename") or ""
        if not isinstance(filename, str):
            raise ApiError(400, "bad_filename", f"'{prefix}filename' must be a string.")
        return Upload(decode_image_text(item.get("image"), f"{prefix}image"), filename, source)
    return Upload(decode_image_text(item, label), "", source)


def _files(request: Request, source: str) -> list[Upload]:
    files = request.files.getlist("file")
    if not files:
        raise ApiError(400, "missing_file", "Send the image in a form field named 'file'.")
    uploads = [Upload(f.read(), f.filename or "", source) for f in files]
    if not all(upload.data for upload in uploads):
        raise ApiError(400, "empty_file", "The uploaded file is empty.")
    return uploads


def uploads_from(request: Request, *, batch: bool, default_source: str = "api") -> list[Upload]:
    """The uploads in ``request``: one unless ``batch`` (then ``file`` repeated, or JSON
    ``{"images": [...]}``)."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        uploads = _files(request, _source(request.form.get("source"), default_source))
    elif mimetype == "application/json":
        body = _json_body(request)
        source = _source(body.get("source"), default_source)
        if batch:
            items = body.get("images")
            if not isinstance(items, list) or not items:
                raise ApiError(400, "missing_images", "'images' must be a non-empty list.")
            uploads = [_json_upload(item, source, f"images[{i}]") for i, item in enumerate(items)]
        else:
            uploads = [_json_upload(body, source)]
    elif not batch and mimetype.startswith(RAW_TYPES):
        data = request.get_data(cache=False)
        if not data:
            raise ApiError(400, "empty_body", "The request body is empty.")
        filename = request.args.get("filename", "")
        uploads = [Upload(data, filename, _source(request.args.get("source"), default_source))]
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {mimetype or '(none)'} is not accepted; send {ACCEPTED}.",
        )
    if not batch and len(uploads) > 1:
        raise ApiError(400, "too_many_files", "Send one image, or use the batch endpoint.")
    return uploads


def form_data_uri(request: Request, field: str | None = None) -> Upload:
    """The image of a form-encoded ``<field>=<data URI>`` body (any field name if None)."""
    fields = [(field, request.form.get(field))] if field else list(request.form.items())
    name, value = next(((n, v) for n, v in fields if v), (None, None))
    if name is None:
        wanted = f"a form field '{field}'" if field else "one form field"
        raise ApiError(400, "missing_image", f"Send the drawing as a data URI in {wanted}.")
    # Errors name the field the client used, so that it can find what it sent.
    return Upload(decode_image_text(value, name), "", "legacy")


def reject_unnamed_fields() -> None:
    """Refuses a form whose fields have no name (a malformed multipart part, e.g. one named
    ``"\\"``, which werkzeug reads as None and flask-wtf's CSRF check crashes on)."""
    if None in request.form or None in request.files:
        raise ApiError(400, "malformed_form", "Every form field must have a name.")
