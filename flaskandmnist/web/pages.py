"""HTML pages for people (placeholder until the pages land)."""

from __future__ import annotations

import uuid

from flask import Blueprint, render_template

from .services import services

bp = Blueprint("pages", __name__)


@bp.get("/")
def home() -> str:
    return render_template("base.html")


@bp.get("/predictions/<uuid:prediction_id>")
def prediction(prediction_id: uuid.UUID) -> str:
    return render_template(
        "prediction.html", prediction=services().store.get(prediction_id), just_made=False
    )
