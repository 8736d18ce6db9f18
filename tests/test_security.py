"""Hardening (issue 6, part 3): security headers, request and image size limits, types
sniffed from the bytes, sanitised filenames, CSRF on the forms only, a rate limit per
client, optional authentication for the stored predictions, and TLS to Cassandra."""

from __future__ import annotations

import base64
import datetime as dt
import io
import ipaddress
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from crafted import bmp_declaring, digit_image, gif_declaring, png_declaring
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from limits.storage import MemoryStorage
from support import wait_until
from werkzeug.security import generate_password_hash

from flaskandmnist.config import CassandraSettings, ConfigError, SecuritySettings, Settings
from flaskandmnist.storage import PredictionStore, build_cluster
from flaskandmnist.web import rate_counts, security

pytestmark = pytest.mark.cassandra

EXPECTED_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
PASSWORD = "correct horse"


def error_code(response: Any) -> str:
    """The code of a JSON error answer, after checking its shape and message."""
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"].strip()
    return body["error"]["code"]


def message(response: Any) -> str:
    return response.get_json()["error"]["message"]


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def client_at(app: Flask, address: str) -> FlaskClient:
    """A client whose requests come from ``address``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- Apps with other settings (each on a keyspace of its own) ------------------------------


@pytest.fixture(scope="module")
def limited_app(make_app: Callable[..., Flask]) -> Flask:
    """Requests up to 6,000 bytes, images up to 3,000."""
    return make_app(Settings(max_image_bytes=3000), max_request_bytes=6000)


@pytest.fixture(scope="module")
def guarded_app(make_app: Callable[..., Flask]) -> Flask:
    """3 posts a minute per client, a password for the stored predictions, HSTS."""
    guarded = SecuritySettings(
        rate_limit="3/minute",
        auth_username="ada",
        auth_password=PASSWORD,
        hsts_seconds=31_536_000,
    )
    return make_app(Settings(security=guarded))


@pytest.fixture(scope="module")
def guarded_id(guarded_app: Flask) -> uuid.UUID:
    """A prediction in the guarded app, posted without credentials."""
    client = client_at(guarded_app, "198.51.100.1")
    response = client.post("/api/v1/predictions", data=digit_image(), content_type="image/png")
    assert response.status_code == 201
    return uuid.UUID(response.get_json()["id"])


@pytest.fixture(scope="module")
def proxied_app(make_app: Callable[..., Flask]) -> Flask:
    """Behind one trusted proxy, 2 posts a minute, the password given as a hash."""
    proxied = SecuritySettings(
        rate_limit="2/minute",
        trust_proxy=1,
        auth_username="ada",
        auth_password_hash=generate_password_hash("battery staple"),
    )
    return make_app(Settings(security=proxied))


@pytest.fixture(scope="module")
def stored_id(app: Flask) -> uuid.UUID:
    """A prediction in the shared app."""
    response = app.test_client().post(
        "/api/v1/predictions", data=digit_image(), content_type="image/png"
    )
    assert response.status_code == 201
    return uuid.UUID(response.get_json()["id"])


# --- Security headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "request_args"),
    [
        ("GET", "/", {}),
        ("GET", "/history", {}),
        ("GET", "/api/v1/openapi.json", {}),
        ("GET", "/healthz", {}),
        ("GET", "/static/app.js", {}),
        ("GET", "/no-such-page", {}),
        ("GET", "/api/v1/no-such-route", {}),
        ("POST", "/api/v1/predictions", {"data": b"hi", "content_type": "text/plain"}),
        ("POST", f"/predictions/{uuid.uuid1()}/correction", {"data": {"digit": "3"}}),
    ],
)
def test_every_answer_carries_the_security_headers(
    client: FlaskClient, method: str, path: str, request_args: dict[str, Any]
) -> None:
    response = client.open(path, method=method, **request_args)
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (path, response.status_code, name)
    assert "Strict-Transport-Security" not in response.headers  # not configured


def test_csp_allows_no_inline_code_framing_or_plugins() -> None:
    policy = EXPECTED_HEADERS["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert directives["script-src"] == directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == directives["object-src"] == ["'none'"]


def test_hsts_is_sent_when_configured(guarded_app: Flask) -> None:
    response = guarded_app.test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


# --- Size limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "request_args"),
    [
        ("/api/v1/predictions", {"data": b"\0" * 7000, "content_type": "image/png"}),
        ("/api/v1/predictions", {"data": {"file": (io.BytesIO(b"\0" * 7000), "big.png")}}),
        ("/api/v1/predictions", {"json": {"image": "A" * 7000}}),
        ("/api/v1/predictions/batch", {"json": {"images": ["A" * 4000, "A" * 4000]}}),
        ("/upload3", {"data": {"drawing": "data:image/png;base64," + "A" * 7000}}),
        ("/api/predict", {"json": {"image": "A" * 7000}}),
    ],
    ids=["raw", "multipart", "json", "batch", "form", "seed-json"],
)
def test_oversize_request_is_413_naming_the_limit(
    limited_app: Flask, path: str, request_args: dict[str, Any]
) -> None:
    response = limited_app.test_client().post(path, **request_args)
    assert response.status_code == 413
    assert error_code(response) == "request_too_large"
    assert "the limit is 6,000 bytes" in message(response)


def test_oversize_upload_form_gets_a_page_naming_the_limit(limited_app: Flask) -> None:
    response = limited_app.test_client().post(
        "/upload", data={"file": (io.BytesIO(b"\0" * 7000), "big.png")}
    )
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert "the limit is 6,000 bytes" in response.get_data(as_text=True)


def test_image_file_over_its_own_limit_is_413(limited_app: Flask) -> None:
    response = limited_app.test_client().post(
        "/api/v1/predictions", data=b"\x89PNG" + b"\0" * 4000, content_type="image/png"
    )
    assert response.status_code == 413
    assert error_code(response) == "image_too_large"
    assert "the limit is 3,000 bytes" in message(response)


@pytest.mark.parametrize(
    "image",
    [
        png_declaring(100_000, 100_000),
        png_declaring(7_000, 7_000),  # over our limit, under Pillow's own bomb limit
        gif_declaring(65_535, 65_535),
        bmp_declaring(100_000, 100_000),
    ],
    ids=["png-100000x100000", "png-7000x7000", "gif-65535x65535", "bmp-100000x100000"],
)
def test_huge_declared_dimensions_are_refused_before_decoding(
    client: FlaskClient, image: bytes
) -> None:
    """These files hold no pixels: a decoder would call them truncated (422), so a 413
    shows that the header alone decided."""
    response = client.post("/api/v1/predictions", data=image, content_type="image/png")
    assert response.status_code == 413
    assert error_code(response) == "image_too_large"
    assert "the limit is 40,000,000 pixels" in message(response)


# --- Types come from the bytes -------------------------------------------------------------


def test_type_is_sniffed_from_the_bytes_not_the_name_or_the_header(client: FlaskClient) -> None:
    png = digit_image("PNG")
    response = client.post(
        "/api/v1/predictions", data={"file": (io.BytesIO(png), "x.gif", "image/jpeg")}
    )
    assert response.status_code == 201
    assert response.get_json()["content_type"] == "image/png"
    served = client.get(response.get_json()["image_url"])
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.data == png


@pytest.mark.parametrize(
    ("data", "filename", "content_type"),
    [
        (b"just some text\n", "x.png", "image/png"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "x.svg", "image/svg+xml"),
        (b"<html><script>alert(1)</script></html>", "x.gif", "image/gif"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "x.jpg", "image/jpeg"),
    ],
    ids=["text", "svg", "html", "pdf"],
)
def test_what_is_not_an_image_is_415_whatever_it_claims(
    client: FlaskClient, data: bytes, filename: str, content_type: str
) -> None:
    response = client.post(
        "/api/v1/predictions", data={"file": (io.BytesIO(data), filename, content_type)}
    )
    assert response.status_code == 415
    assert error_code(response) == "not_an_image"


# --- Filenames -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/etc/shadow", "shadow"),
        ("seven\x00.png", "seven.png"),
        ("\u202egnp.exe", "gnp.exe"),
        ("..", ""),
    ],
)
def test_hostile_filenames_are_stored_sanitised(
    client: FlaskClient, app_store: PredictionStore, given: str, kept: str
) -> None:
    response = client.post(
        "/api/v1/predictions", json={"image": b64(digit_image()), "filename": given}
    )
    assert response.status_code == 201
    assert response.get_json()["filename"] == kept
    stored = app_store.get(uuid.UUID(response.get_json()["id"]))
    assert stored is not None and stored.filename == kept


def test_filenames_are_never_used_as_paths(client: FlaskClient, tmp_path: Path) -> None:
    target = tmp_path / "planted.png"
    climbing = "../" * 12 + str(target).lstrip("/")
    for name in (str(target), climbing):
        response = client.post(
            "/api/v1/predictions", data={"file": (io.BytesIO(digit_image()), name)}
        )
        assert response.status_code == 201
        assert response.get_json()["filename"] == "planted.png"
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


# --- CSRF: forms for people carry a token, programs do not need one ------------------------


def test_form_post_without_csrf_token_is_refused(
    client: FlaskClient, app_store: PredictionStore, stored_id: uuid.UUID
) -> None:
    response = client.post(f"/predictions/{stored_id}/correction", data={"digit": "3"})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "CSRF" in response.get_data(as_text=True)
    day = app_store.get(stored_id).day  # type: ignore[union-attr]
    assert stored_id not in {c.prediction_id for c in app_store.corrections(day)}


def test_form_post_with_csrf_token_is_accepted(
    client: FlaskClient, app_store: PredictionStore, stored_id: uuid.UUID
) -> None:
    page = client.get(f"/predictions/{stored_id}").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        f"/predictions/{stored_id}/correction", data={"digit": "3", "csrf_token": token}
    )
    assert response.status_code == 303
    day = app_store.get(stored_id).day  # type: ignore[union-attr]
    assert (stored_id, 3) in {(c.prediction_id, c.true_digit) for c in app_store.corrections(day)}


@pytest.mark.parametrize(
    ("path", "request_args", "status"),
    [
        ("/api/v1/predictions", {"data": digit_image(), "content_type": "image/png"}, 201),
        ("/api/v1/predictions/batch", {"json": {"images": [b64(digit_image())]}}, 201),
        ("/upload", {"data": {"file": (io.BytesIO(digit_image()), "seven.png")}}, 200),
        ("/upload3", {"data": {"d": "data:image/png;base64," + b64(digit_image())}}, 200),
        ("/api/predict", {"json": {"image": "data:image/png;base64," + b64(digit_image())}}, 200),
        ("/", {"data": {"imageBase64": "data:image/png;base64," + b64(digit_image())}}, 200),
    ],
)
def test_programs_and_seed_forms_post_without_a_token(
    client: FlaskClient, path: str, request_args: dict[str, Any], status: int
) -> None:
    assert client.post(path, **request_args).status_code == status


def test_api_correction_needs_no_token(client: FlaskClient, stored_id: uuid.UUID) -> None:
    response = client.post(f"/api/v1/predictions/{stored_id}/correction", json={"digit": 5})
    assert response.status_code == 201


# --- Rate limit ----------------------------------------------------------------------------


def test_posts_beyond_the_limit_are_429_for_that_client_only(guarded_app: Flask) -> None:
    one, other = client_at(guarded_app, "203.0.113.1"), client_at(guarded_app, "203.0.113.2")
    # Refused posts count too: the limit is on requests, whatever they hold.
    for _ in range(3):
        assert one.post("/api/v1/predictions", data=b"").status_code == 415
    response = one.post("/api/v1/predictions", data=b"")
    assert response.status_code == 429
    assert error_code(response) == "rate_limited"
    assert "3 per 1 minute" in message(response)
    assert 0 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert other.post("/api/v1/predictions", data=b"").status_code == 415
    # Reading is not limited.
    assert one.get("/healthz").status_code == 200
    assert one.get("/api/v1/openapi.json").status_code == 200


def test_counting_a_post_starts_no_thread(
    guarded_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """limits' own memory storage starts a timer thread on a post whenever its last one has
    finished (at a person's pace, nearly every post), and the post waits for the new thread
    to get the GIL; the worker's storage starts none."""
    timers: list[threading.Timer] = []
    timer = threading.Timer

    class CountedTimer(timer):
        def __init__(self, interval: float, function: Callable[..., Any], *args: Any) -> None:
            super().__init__(interval, function, *args)
            if isinstance(getattr(function, "__self__", None), MemoryStorage):
                timers.append(self)

    monkeypatch.setattr(threading, "Timer", CountedTimer)
    client = client_at(guarded_app, "203.0.113.19")
    for _ in range(3):
        # A person's pace: the storage's last timer, if any, has finished.
        wait_until(lambda: not any(isinstance(t, timer) for t in threading.enumerate()))
        assert client.post("/api/v1/predictions", data=b"").status_code == 415
    assert client.post("/api/v1/predictions", data=b"").status_code == 429  # still counted
    assert timers == []


def test_expired_counts_are_swept_on_the_request_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_counts, "SWEEP_S", 0.0)
    counts = rate_counts.WorkerMemoryStorage()
    wait_until(lambda: not counts.timer.is_alive())  # limits' one timer, from its constructor
    counts.incr("old", expiry=0.01)
    wait_until(lambda: time.time() >= counts.expirations["old"])
    counts.incr("new", expiry=60)
    assert "old" not in counts.storage and counts.get("new") == 1


def test_people_over_the_limit_get_a_page(guarded_app: Flask) -> None:
    client = client_at(guarded_app, "203.0.113.3")
    for _ in range(3):
        assert client.post("/upload", data={}).status_code == 415
    response = client.post("/upload", data={})
    assert response.status_code == 429
    assert response.mimetype == "text/html"
    assert "Too many requests" in response.get_data(as_text=True)


def test_forwarded_for_is_ignored_without_a_trusted_proxy(guarded_app: Flask) -> None:
    client = client_at(guarded_app, "203.0.113.4")
    statuses = [
        client.post(
            "/api/v1/predictions", data=b"", headers={"X-Forwarded-For": f"10.0.0.{n}"}
        ).status_code
        for n in range(4)
    ]
    assert statuses == [415, 415, 415, 429]


def test_behind_a_trusted_proxy_each_forwarded_client_is_counted(proxied_app: Flask) -> None:
    proxy = client_at(proxied_app, "10.1.1.1")

    def post(client_address: str) -> int:
        headers = {"X-Forwarded-For": client_address}
        return proxy.post("/api/v1/predictions", data=b"", headers=headers).status_code

    assert [post("192.0.2.10") for _ in range(3)] == [415, 415, 429]
    assert post("192.0.2.11") == 415


# --- Authentication ------------------------------------------------------------------------

PROTECTED_READS = [
    ("/history", "text/html"),
    ("/predictions/{id}", "text/html"),
    ("/api/v1/predictions", "application/json"),
    ("/api/v1/predictions/{id}", "application/json"),
    ("/api/v1/predictions/{id}/image", "application/json"),
    ("/api/v1/predictions/{id}/input.png", "application/json"),
]


@pytest.mark.parametrize(("path", "error_type"), PROTECTED_READS)
def test_stored_predictions_need_the_password(
    guarded_app: Flask, guarded_id: uuid.UUID, path: str, error_type: str
) -> None:
    client, url = guarded_app.test_client(), path.format(id=guarded_id)
    for headers in ({}, basic("ada", "wrong"), basic("eve", PASSWORD), {"Authorization": "x"}):
        response = client.get(url, headers=headers)
        assert response.status_code == 401, headers
        assert (
            response.headers["WWW-Authenticate"] == 'Basic realm="flaskandmnist", charset="UTF-8"'
        )
        assert response.mimetype == error_type
    assert client.get(url, headers=basic("ada", PASSWORD)).status_code == 200


def test_corrections_need_the_password(guarded_app: Flask, guarded_id: uuid.UUID) -> None:
    client = guarded_app.test_client()
    url = f"/api/v1/predictions/{guarded_id}/correction"
    response = client.post(url, json={"digit": 1})
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert client.post(url, json={"digit": 1}, headers=basic("ada", PASSWORD)).status_code == 201


def test_recognising_and_the_home_page_stay_open(guarded_app: Flask) -> None:
    client = client_at(guarded_app, "198.51.100.2")
    assert client.get("/").status_code == 200
    assert client.get("/healthz").status_code == 200
    posted = client.post("/api/v1/predictions", data=digit_image(), content_type="image/png")
    assert posted.status_code == 201


def test_a_password_hash_works_like_the_password(proxied_app: Flask) -> None:
    def status(password: str) -> int:
        headers = basic("ada", password)
        return proxied_app.test_client().get("/api/v1/predictions", headers=headers).status_code

    assert (status("battery staple"), status("battery")) == (200, 401)


def test_every_view_of_stored_predictions_is_private(app: Flask) -> None:
    """Each view that shows, exports, changes or deletes stored predictions carries
    @private; posting new images, the pages without records and health stay open."""
    assert security.protected_endpoints(app) == {
        "pages.history",
        "pages.prediction",
        "pages.correct",
        "pages.delete",
        "api.list_predictions",
        "api.export_csv",
        "api.export_zip",
        "api.get_prediction",
        "api.delete_prediction",
        "api.prediction_image",
        "api.prediction_input",
        "api.correct_prediction",
    }


# --- Settings ------------------------------------------------------------------------------


def test_security_settings_default_and_from_env() -> None:
    assert SecuritySettings.from_env({}) == SecuritySettings()
    assert SecuritySettings().rate_limit == "120/minute"
    assert not SecuritySettings().auth_required
    settings = SecuritySettings.from_env(
        {
            "RATE_LIMIT": "10/second;1000/day",
            "RATE_LIMIT_STORAGE_URI": "redis://cache:6379",
            "TRUST_PROXY": "1",
            "AUTH_USERNAME": "ada",
            "AUTH_PASSWORD": "pw",
            "HSTS_SECONDS": "600",
        }
    )
    assert settings == SecuritySettings(
        rate_limit="10/second;1000/day",
        rate_limit_storage_uri="redis://cache:6379",
        trust_proxy=1,
        auth_username="ada",
        auth_password="pw",
        hsts_seconds=600,
    )
    assert settings.auth_required
    assert SecuritySettings.from_env({"RATE_LIMIT": "off"}).rate_limit == ""


@pytest.mark.parametrize(
    "env",
    [
        {"RATE_LIMIT": "lots"},
        {"AUTH_USERNAME": "ada"},
        {"AUTH_PASSWORD": "pw"},
        {"AUTH_USERNAME": "ada", "AUTH_PASSWORD": "pw", "AUTH_PASSWORD_HASH": "scrypt:1$a$0f"},
        {"AUTH_USERNAME": "ada", "AUTH_PASSWORD_HASH": "plain text"},
        {"TRUST_PROXY": "-1"},
    ],
)
def test_bad_security_settings_stop_the_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        SecuritySettings.from_env(env)


# --- TLS to Cassandra ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A CA, a node certificate for 127.0.0.1 and a client certificate it signed (PEM)."""

    ca: Path
    node_cert: Path
    node_key: Path
    client_cert: Path
    client_key: Path


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, Any] | None
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write(folder: Path, name: str, cert: x509.Certificate, key: Any = None) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


def make_pki(folder: Path, ca_name: str = "flaskandmnist test CA") -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(ca_name, ca_key, None)
    paths = {}
    for name in ("node", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        paths[name] = _write(folder, name, _certificate(name, key, (ca, ca_key)), key)
    ca_path, _ = _write(folder, "ca", ca)
    return Pki(ca_path, *paths["node"], *paths["client"])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def handshake(client: ssl.SSLContext, server: ssl.SSLContext, hostname: str) -> None:
    """A TLS handshake between the two contexts over a socket pair; raises ssl.SSLError if
    either side refuses the other."""
    near, far = socket.socketpair()
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            with server.wrap_socket(far, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError) as error:
            failures.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(near, server_hostname=hostname) as tls:
            tls.sendall(b"x")
    finally:
        thread.join(timeout=10)
    if failures:
        raise failures[0]


def node_context(pki: Pki, require_client_cert: bool) -> ssl.SSLContext:
    """What a Cassandra node with client_encryption_options does."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.node_cert, pki.node_key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    return context


def test_no_tls_unless_asked() -> None:
    assert build_cluster(CassandraSettings()).ssl_context is None


def test_tls_verifies_nodes_against_the_given_ca_only(pki: Pki) -> None:
    settings = CassandraSettings(ssl=True, ssl_ca_file=str(pki.ca))
    context = build_cluster(settings).ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [dict(item[0] for item in ca["subject"]) for ca in context.get_ca_certs()] == [
        {"commonName": "flaskandmnist test CA"}
    ]
    handshake(context, node_context(pki, require_client_cert=False), "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):  # not the name in the certificate
        handshake(context, node_context(pki, require_client_cert=False), "10.9.9.9")


def test_tls_refuses_a_node_signed_by_another_ca(pki: Pki, tmp_path: Path) -> None:
    stranger = make_pki(tmp_path, "someone else's CA")
    context = CassandraSettings(ssl=True, ssl_ca_file=str(pki.ca)).ssl_context()
    assert context is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(context, node_context(stranger, require_client_cert=False), "127.0.0.1")


def test_tls_hostname_check_can_be_turned_off_but_never_verification(pki: Pki) -> None:
    settings = CassandraSettings(ssl=True, ssl_ca_file=str(pki.ca), ssl_verify_hostname=False)
    context = settings.ssl_context()
    assert context is not None
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    handshake(context, node_context(pki, require_client_cert=False), "10.9.9.9")


def test_tls_client_certificate_for_nodes_that_require_one(pki: Pki) -> None:
    node = node_context(pki, require_client_cert=True)
    without = CassandraSettings(ssl=True, ssl_ca_file=str(pki.ca)).ssl_context()
    with_cert = CassandraSettings(
        ssl=True,
        ssl_ca_file=str(pki.ca),
        ssl_cert_file=str(pki.client_cert),
        ssl_key_file=str(pki.client_key),
    ).ssl_context()
    assert without is not None and with_cert is not None
    handshake(with_cert, node, "127.0.0.1")
    with pytest.raises(ssl.SSLError):
        handshake(without, node, "127.0.0.1")


def test_tls_settings_from_env(pki: Pki) -> None:
    env = {
        "CASSANDRA_SSL": "true",
        "CASSANDRA_SSL_CA_FILE": str(pki.ca),
        "CASSANDRA_SSL_CERT_FILE": str(pki.client_cert),
        "CASSANDRA_SSL_KEY_FILE": str(pki.client_key),
        "CASSANDRA_SSL_VERIFY_HOSTNAME": "0",
    }
    settings = CassandraSettings.from_env(env)
    assert (settings.ssl, settings.ssl_ca_file, settings.ssl_verify_hostname) == (
        True,
        str(pki.ca),
        False,
    )
    assert (settings.ssl_cert_file, settings.ssl_key_file) == (
        str(pki.client_cert),
        str(pki.client_key),
    )


@pytest.mark.parametrize(
    "env",
    [
        {"CASSANDRA_SSL": "1", "CASSANDRA_SSL_CA_FILE": "/nonexistent/ca.pem"},
        {"CASSANDRA_SSL": "1", "CASSANDRA_SSL_CA_FILE": "{not_pem}"},
        {"CASSANDRA_SSL_CA_FILE": "{ca}"},  # files, but TLS not switched on
        {"CASSANDRA_SSL": "1", "CASSANDRA_SSL_KEY_FILE": "{key}"},  # a key without its cert
        {"CASSANDRA_SSL": "maybe"},
    ],
)
def test_unusable_tls_settings_stop_the_start(
    pki: Pki, tmp_path: Path, env: dict[str, str]
) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    paths = {"not_pem": not_pem, "ca": pki.ca, "key": pki.client_key}
    with pytest.raises(ConfigError):
        CassandraSettings.from_env({k: v.format(**paths) for k, v in env.items()})


def test_only_refusals_for_now_carry_retry_after(guarded_app: Flask) -> None:
    """The rate limiter's headers stay; Retry-After ("try again later") is for 429 and 503."""
    client = client_at(guarded_app, "203.0.113.9")
    response = client.post("/api/v1/predictions", data=digit_image(), content_type="image/png")
    assert response.status_code == 201
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert "Retry-After" not in response.headers


def test_delete_and_export_need_the_password(guarded_app: Flask) -> None:
    client = client_at(guarded_app, "198.51.100.7")
    for url in ("/api/v1/predictions.csv", "/api/v1/predictions.zip"):
        assert client.get(url).status_code == 401
        assert client.get(url, headers=basic("ada", PASSWORD)).status_code == 200
    posted = client.post("/api/v1/predictions", data=digit_image(), content_type="image/png")
    url = posted.get_json()["url"]
    assert client.delete(url).status_code == 401
    assert client.get(url, headers=basic("ada", PASSWORD)).status_code == 200
    assert client.delete(url, headers=basic("ada", PASSWORD)).status_code == 204
    assert client.get(url, headers=basic("ada", PASSWORD)).status_code == 404


def test_pillows_bomb_limit_is_not_quoted(client: FlaskClient) -> None:
    """20000x20000 is over Pillow's own limit, which refuses before our check can."""
    response = client.post(
        "/api/v1/predictions", data=png_declaring(20_000, 20_000), content_type="image/png"
    )
    assert response.status_code == 413
    assert (
        message(response)
        == "The image has more pixels than allowed: the limit is 40,000,000 pixels."
    )
