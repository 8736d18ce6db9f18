"""The web app: ``create_app()`` builds it (gunicorn: ``flaskandmnist.web:create_app()``).

Blueprints: ``pages`` (HTML for people), ``api`` (JSON, ``/api/v1``), ``apidocs`` (the API's
reference, ``/api/docs``), ``compat`` (the seeds' routes) and ``health``. Configuration
comes from :class:`~flaskandmnist.config.Settings`. :func:`close_app` stops what the app
started (gunicorn's ``worker_exit`` calls it).
"""

from __future__ import annotations

import logging
import secrets

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from flaskandmnist import metrics
from flaskandmnist.classifier import Classifier
from flaskandmnist.config import Settings

from . import api, apidocs, compat, errors, health, pages, security, uploads
from .services import EXTENSION, Services, close_app

__all__ = ["close_app", "create_app"]

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, classifier: Classifier | None = None) -> Flask:
    """The app for ``settings`` (default: the environment); loads the model unless given."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    secret_key = settings.web.secret_key
    if secret_key is None:
        # Sessions and CSRF tokens then hold in this process only (one worker, one replica).
        logger.warning("SECRET_KEY is not set; using a random key for this process")
        secret_key = secrets.token_hex(32)
    app.config.update(
        SECRET_KEY=secret_key,
        MAX_CONTENT_LENGTH=settings.web.max_request_bytes,
        # Form fields hold data URIs (the seeds' drawboards), not just short text.
        MAX_FORM_MEMORY_SIZE=settings.web.max_request_bytes,
    )
    app.extensions[EXTENSION] = Services.build(
        settings, classifier or Classifier.load(settings.model_path)
    )
    # First, so that its timer starts before any other hook can refuse the request.
    metrics.init_app(app)
    # Before the CSRF check, which reads every form field's name.
    app.before_request(uploads.reject_unnamed_fields)
    csrf = CSRFProtect(app)
    # Programs (the JSON API and the seeds' clients) send no CSRF token; forms for people do.
    csrf.exempt(api.bp)
    csrf.exempt(compat.bp)
    errors.register(app)
    for blueprint in (pages.bp, api.bp, apidocs.bp, compat.bp, health.bp):
        app.register_blueprint(blueprint)
    security.init_app(app, settings)
    return app
