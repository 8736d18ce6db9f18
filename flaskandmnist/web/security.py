"""Hardening: security headers on every response, a rate limit per client on the posts,
optional HTTP Basic authentication of the stored predictions, and 413/429 answers that say
the limit. Configured by :class:`~flaskandmnist.config.SecuritySettings`.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.security import check_password_hash

from flaskandmnist.config import SecuritySettings, Settings

from . import rate_counts
from .errors import ApiError, respond

#: Scripts, styles and connections only from this origin, and no inline code (an injected
#: tag does nothing); images also as data: (history thumbnails) and blob: (the preview of a
#: chosen file); no framing (clickjacking), plugins, <base> tricks or foreign form targets.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # Served types are meant: an image is never run as a script or page.
    "X-Content-Type-Options": "nosniff",
    # Prediction URLs hold ids; other sites are not told them.
    "Referrer-Policy": "same-origin",
    # frame-ancestors for browsers that predate it.
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_View = TypeVar("_View", bound=Callable[..., Any])


def private(view: _View) -> _View:
    """Marks a view that shows stored predictions or changes them: behind authentication
    when a username is configured (as flaskr's ``login_required``). Posting a new image
    stays open."""
    view.private = True  # type: ignore[attr-defined]
    return view


def protected_endpoints(app: Flask) -> frozenset[str]:
    """The endpoints of ``app`` whose views are marked :func:`private`."""
    return frozenset(
        name for name, view in app.view_functions.items() if getattr(view, "private", False)
    )


REALM = "flaskandmnist"


def init_app(app: Flask, settings: Settings) -> None:
    """Installs the headers, limits and authentication; call after the blueprints."""
    security = settings.security
    _add_headers(app, security)
    _answer_too_large(app)
    if security.trust_proxy:
        # The client's address is the one the nearest trusted proxy saw.
        hops = security.trust_proxy
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    if security.auth_required:
        _require_authentication(app, security)
    if security.rate_limit:
        _limit_rate(app, security)


def _add_headers(app: Flask, security: SecuritySettings) -> None:
    headers = dict(HEADERS)
    if security.hsts_seconds:
        headers["Strict-Transport-Security"] = f"max-age={security.hsts_seconds}"

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        # The rate limiter (whose hook runs before this one) sets Retry-After on every
        # answer; it means "try again later" and belongs only to those that refuse for now.
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        return response


def _answer_too_large(app: Flask) -> None:
    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(error: RequestEntityTooLarge) -> Response:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        size = request.content_length
        if size is not None and size > limit:
            message = f"The request body is {size:,} bytes; the limit is {limit:,} bytes."
        else:  # a body without a declared length, or a form of too many parts
            parts = current_app.config["MAX_FORM_PARTS"]
            message = (
                f"The request is too large: the limit is {limit:,} bytes and {parts:,} form fields."
            )
        return respond(ApiError(413, "request_too_large", message))


def _require_authentication(app: Flask, security: SecuritySettings) -> None:
    @app.before_request
    def _authenticate() -> Response | None:
        view = app.view_functions.get(request.endpoint or "")
        if not getattr(view, "private", False) or _authenticated(security):
            return None
        response = respond(
            ApiError(401, "unauthorized", "Stored predictions are private: sign in to see them.")
        )
        response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
        return response


def _authenticated(security: SecuritySettings) -> bool:
    """Whether the request carries the configured HTTP Basic credentials."""
    try:
        given = request.authorization
    except ValueError:  # werkzeug lets b64decode's complaint about non-ASCII text through
        return False
    if given is None or given.type != "basic":
        return False
    # Both parts are always compared, in constant time: how long it takes tells nothing.
    username_ok = hmac.compare_digest(
        (given.username or "").encode(), (security.auth_username or "").encode()
    )
    password = given.password or ""
    if security.auth_password_hash:
        password_ok = check_password_hash(security.auth_password_hash, password)
    else:
        password_ok = hmac.compare_digest(
            password.encode(), (security.auth_password or "").encode()
        )
    return username_ok & password_ok


def _limit_rate(app: Flask, security: SecuritySettings) -> None:
    limiter = Limiter(
        get_remote_address,
        app=app,
        # One budget per client for all posts together: they are what costs (decoding, the
        # model, Cassandra writes). Pages, listings, images, health and metrics are gets.
        application_limits=[security.rate_limit],
        application_limits_exempt_when=lambda: request.method != "POST",
        storage_uri=(
            rate_counts.URI
            if security.rate_limit_storage_uri == "memory://"
            else security.rate_limit_storage_uri
        ),
        # Counts weighted over the previous window: no double burst at a window's edge.
        strategy="sliding-window-counter",
        headers_enabled=True,
        # A shared store (Redis) that is down must not take the service down: requests
        # then go uncounted, and the failure is logged.
        swallow_errors=True,
    )

    @app.errorhandler(RateLimitExceeded)
    def _too_many(error: RateLimitExceeded) -> Response:
        current = limiter.current_limit
        wait = max(int(current.reset_at - time.time()), 1) if current else 1
        return respond(
            ApiError(
                429,
                "rate_limited",
                f"Too many requests from your address (the limit is {error.limit.limit}); "
                f"try again in {wait} s.",
            )
        )
