"""Fuzzing every route of the app (found in its url_map, so new routes are covered) with
malformed input: random bytes, truncated and corrupted images, huge declared dimensions, bad
base64 and data URIs, wrong JSON shapes, hostile filenames and credentials, empty bodies and
wrong content types.

Whatever comes in, the answer is a clear client error or a success: never a 5xx (Cassandra
is up throughout), JSON ``{"error": {"code", "message"}}`` on the programs' routes and an
HTML page on the others, within a time bound; and the app still answers afterwards.
Hypothesis runs derandomised and without its example database, so CI is reproducible.
"""

from __future__ import annotations

import base64
import io
import re
import string
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any
from urllib.parse import quote

import pytest
from cassandra.util import uuid_from_time
from crafted import FORMATS, bmp_declaring, digit_image, gif_declaring, png_declaring
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule

from flaskandmnist.config import SecuritySettings, Settings
from flaskandmnist.domain import sanitize_filename

pytestmark = pytest.mark.cassandra

#: Longest any one answer may take: far above the slowest real request (a valid image through
#: the model and Cassandra) on a busy two-core machine; a hang or runaway decode exceeds it.
ANSWER_WITHIN_S = 10.0
#: The seeds' routes outside /api/ whose clients are programs (see compat.py).
PROGRAM_ENDPOINTS = frozenset({"compat.upload3", "compat.guess"})
_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def fuzz(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Hypothesis settings for a reproducible run of ``examples`` examples."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,  # the time bound is ANSWER_WITHIN_S, checked on each request
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# --- Strategies ----------------------------------------------------------------------------

VALID_IMAGES = [digit_image(fmt) for fmt in FORMATS]


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    """A valid image truncated, with bytes flipped, inserted or spliced from another."""
    data = bytearray(draw(st.sampled_from(VALID_IMAGES)))
    damage = draw(st.sampled_from(["truncate", "flip", "insert", "splice"]))
    if damage == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if damage == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return bytes(data)
    at = draw(st.integers(0, len(data)))
    if damage == "insert":
        return bytes(data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:])
    other = draw(st.sampled_from(VALID_IMAGES))
    return bytes(data[:at] + other[draw(st.integers(0, len(other))) :])


huge_images = st.one_of(
    st.builds(png_declaring, st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1)),
    st.builds(gif_declaring, st.integers(0, 65535), st.integers(0, 65535)),
    st.builds(bmp_declaring, st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1)),
)
image_bytes = st.one_of(
    st.sampled_from(VALID_IMAGES),
    damaged_images(),
    huge_images,
    st.binary(max_size=600),
    st.sampled_from([b"", b"GIF89a", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"<svg/>", b"BM"]),
)
_BASE64 = string.ascii_letters + string.digits + "+/="
image_texts = st.one_of(
    image_bytes.map(lambda data: base64.b64encode(data).decode()),
    st.text(alphabet=_BASE64 + "-_ \n\t.%", max_size=80),
    st.text(max_size=40),
    st.tuples(
        st.sampled_from(
            [
                "data:",
                "data:,",
                "data:image/png;base64,",
                "data:image/png,",
                "data:image/png;base64",
                "data:;base64,",
                "data:text/html;base64,",
                "DATA:image/png;base64,",
                "data:image/png;charset=utf-8;base64,",
            ]
        ),
        st.one_of(
            image_bytes.map(lambda data: base64.b64encode(data).decode()),
            st.text(alphabet=_BASE64 + ",;:", max_size=60),
        ),
    ).map("".join),
)
hostile_filenames = st.one_of(
    st.sampled_from(
        [
            "../../etc/passwd",
            "..\\..\\windows\\win.ini",
            "/etc/shadow",
            "a\x00b.png",
            "\u202egnp.exe",
            "x\u200b.png",
            "CON",
            ".",
            "..",
            "...",
            "%2e%2e%2fetc%2fpasswd",
            "<script>alert(1)</script>.png",
            "line\r\nbreak.png",
            "\ud800.png",
            "x" * 5000,
            "",
        ]
    ),
    st.text(max_size=300),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["image", "images", "filename", "source", "digit"])
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
image_items = st.one_of(
    image_texts,
    st.fixed_dictionaries(
        {"image": image_texts | json_values},
        optional={"filename": hostile_filenames | json_values},
    ),
    json_values,
)
#: Bodies of the JSON routes: almost right, or of the wrong shape altogether.
json_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"image": image_texts | json_values},
        optional={
            "filename": hostile_filenames | json_values,
            "source": st.sampled_from(["api", "canvas", "upload", "fax"]) | json_values,
        },
    ),
    st.fixed_dictionaries({"images": st.lists(image_items, max_size=5) | json_values}),
    st.fixed_dictionaries({"digit": st.integers(-3, 12) | json_values}),
)
#: JSON text that is not JSON, or nested deeper than any parser recurses.
broken_json = st.one_of(
    st.text(max_size=60),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 3000).map(lambda depth: '{"a":' * depth),
    json_bodies.map(lambda body: repr(body)[:-1]),
)
content_types = st.one_of(
    st.sampled_from(
        [
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/svg+xml",
            "application/octet-stream",
            "application/json",
            "application/json; charset=utf-16",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=nothing",
            "text/plain",
            "text/html",
            "*/*",
            ";;;==",
        ]
    ),
    st.text(alphabet=string.printable.strip(), max_size=30),
)
form_fields = st.dictionaries(
    st.sampled_from(["imageBase64", "image", "digit", "source", "csrf_token"])
    | st.text(max_size=8),
    image_texts | st.text(max_size=20),
    max_size=4,
)


#: A multipart header carries bytes: lone surrogates cannot be sent there.
multipart_filenames = hostile_filenames.map(lambda name: name.encode("utf-8", "replace").decode())


@st.composite
def multipart_bodies(draw: st.DrawFn) -> dict[str, Any]:
    files = [
        (io.BytesIO(draw(image_bytes)), draw(multipart_filenames), draw(content_types))
        for _ in range(draw(st.integers(0, 3)))
    ]
    name = draw(st.sampled_from(["file", "image", ""]))
    fields = draw(form_fields)
    return {"data": {**fields, name: files}, "content_type": "multipart/form-data"}


bodies = st.one_of(
    st.just({}),
    st.builds(lambda ct: {"data": b"", "content_type": ct}, content_types),
    st.builds(lambda data, ct: {"data": data, "content_type": ct}, image_bytes, content_types),
    st.builds(lambda body: {"json": body}, json_bodies),
    st.builds(lambda text: {"data": text, "content_type": "application/json"}, broken_json),
    multipart_bodies(),
    st.builds(
        lambda fields: {"data": fields, "content_type": "application/x-www-form-urlencoded"},
        form_fields,
    ),
)


def _query(pairs: dict[str, str]) -> str:
    # Percent-encoded by hand: lone surrogates become the invalid UTF-8 a client may send.
    def encode(text: str) -> str:
        return quote(text.encode("utf-8", "surrogatepass"), safe="")

    return "&".join(f"{encode(key)}={encode(value)}" for key, value in pairs.items())


query_strings = st.dictionaries(
    st.sampled_from(["limit", "before", "digit", "day", "filename", "source"])
    | st.text(max_size=6),
    st.one_of(
        st.text(max_size=40),
        st.integers(-(10**20), 10**20).map(str),
        st.uuids().map(str),
        st.dates().map(str),
        hostile_filenames,
    ),
    max_size=4,
).map(_query)


# --- The app under fuzz --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture(scope="module")
def known_id(fuzz_app: Flask) -> uuid.UUID:
    """A stored prediction, so that id routes also get ids that exist."""
    response = fuzz_app.test_client().post(
        "/api/v1/predictions", data=digit_image(), content_type="image/png"
    )
    assert response.status_code == 201, response.get_json()
    return uuid.UUID(response.get_json()["id"])


def routes(app: Flask) -> list[tuple[Rule, str]]:
    """Every (rule, method) of the app, HEAD and OPTIONS aside (Flask answers them itself)."""
    found = [
        (rule, method)
        for rule in app.url_map.iter_rules()
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    ]
    return sorted(found, key=lambda pair: (pair[0].rule, pair[1]))


def path_values(rule: Rule, known_id: uuid.UUID) -> st.SearchStrategy[dict[str, Any]]:
    """Values for the rule's URL arguments, by converter: ids that exist, that do not and
    that are not time-based; paths that climb out of the folder; any text."""
    values = {}
    for converter, name in _ARGUMENT.findall(rule.rule):
        if converter == "uuid":
            values[name] = st.one_of(
                st.just(known_id),
                st.uuids(),
                st.builds(
                    uuid_from_time,
                    st.datetimes(timezones=st.just(UTC)),
                    node=st.integers(0, 2**48 - 1),
                    clock_seq=st.integers(0, 2**14 - 1),
                ),
            )
        elif converter == "path":
            values[name] = st.one_of(
                st.sampled_from(
                    ["app.js", "../../conftest.py", "..%2f..%2fetc/passwd", "/etc/passwd"]
                ),
                st.text(min_size=1, max_size=40),
            )
        else:
            values[name] = st.text(min_size=1, max_size=40).filter(lambda text: "/" not in text)
    return st.fixed_dictionaries(values)


def answers_json(rule: Rule, method: str, path: str) -> bool:
    """The programs' routes: /api/ (v1 and the React seed), health, and the seeds' JSON posts."""
    matched = method in (rule.methods or set())
    program = rule.endpoint.startswith("health.") or rule.endpoint in PROGRAM_ENDPOINTS
    return path.startswith("/api/") or (matched and program)


def url(app: Flask, rule: Rule, arguments: dict[str, Any]) -> str:
    """The rule's path with these arguments (escaped as a client would)."""
    return app.url_map.bind("localhost").build(rule.endpoint, arguments, method=None)


def send(app: Flask, method: str, path: str, **request: Any) -> Any:
    """The app's answer, checked against the rules every answer follows."""
    started = time.monotonic()
    response = app.test_client().open(path, method=method, **request)
    elapsed = time.monotonic() - started
    assert response.status_code < 500, (method, path, response.status_code, response.data[:300])
    assert elapsed < ANSWER_WITHIN_S, (method, path, elapsed)
    return response


def assert_clear_error(response: Any, expect_json: bool) -> None:
    """A refusal says why: JSON {"error": {"code", "message"}} for programs, a page for people."""
    if response.status_code < 400:
        return
    if expect_json:
        body = response.get_json(silent=True)
        assert isinstance(body, dict), response.data[:300]
        if "results" in body:  # a batch: each image refused with its own error
            errors = [result["error"] for result in body["results"] if "error" in result]
            assert errors, body
        else:
            # "Not a digit" is stored all the same: the API sends the prediction with the
            # error (the seeds' routes, in their own form, do not).
            refused = body.get("error", {}).get("code") == "not_a_digit"
            allowed = {"error", "prediction"} if refused else {"error"}
            assert "error" in body and set(body) <= allowed, body
            errors = [body["error"]]
        for error in errors:
            assert set(error) == {"code", "message"}, body
            assert error["code"] and error["message"].strip(), body
    else:
        assert response.mimetype == "text/html", (response.mimetype, response.data[:300])
        assert response.get_data(as_text=True).strip()


# --- The fuzz tests ------------------------------------------------------------------------


@fuzz(examples=1500)
@given(data=st.data())
def test_every_route_survives_anything(
    fuzz_app: Flask, known_id: uuid.UUID, data: st.DataObject
) -> None:
    rule, method = data.draw(st.sampled_from(routes(fuzz_app)), label="route")
    method = data.draw(st.sampled_from([method, method, method, "PUT", "DELETE"]), label="method")
    path = url(fuzz_app, rule, data.draw(path_values(rule, known_id), label="arguments"))
    body = data.draw(bodies, label="body") if method != "GET" else {}
    query = data.draw(query_strings, label="query")
    response = send(fuzz_app, method, path, query_string=query, **body)
    assert_clear_error(response, answers_json(rule, method, path))


@fuzz(examples=1000)
@given(
    data=st.data(),
    image=image_bytes,
    wrapping=st.sampled_from(["raw", "multipart", "json", "data_uri", "form"]),
    filename=multipart_filenames,
    content_type=content_types,
)
def test_image_posts_survive_hostile_images(
    fuzz_app: Flask,
    data: st.DataObject,
    image: bytes,
    wrapping: str,
    filename: str,
    content_type: str,
) -> None:
    """Each post route that takes an image gets one (valid, damaged, huge, random) in each
    way an image comes: raw body, multipart file, JSON base64 or data URI, form data URI."""
    posts = [(rule, method) for rule, method in routes(fuzz_app) if method == "POST"]
    uploads = [(rule, method) for rule, method in posts if not rule.arguments]
    rule, method = data.draw(st.sampled_from(uploads), label="route")
    uri = "data:image/png;base64," + base64.b64encode(image).decode()
    body: dict[str, Any] = {
        "raw": {"data": image, "content_type": content_type},
        "multipart": {
            "data": {"file": (io.BytesIO(image), filename, content_type)},
            "content_type": "multipart/form-data",
        },
        "json": {"json": {"image": base64.b64encode(image).decode(), "filename": filename}},
        "data_uri": {"json": {"image": uri, "imageBase64": uri}},
        "form": {"data": {"imageBase64": uri, "image": uri}},
    }[wrapping]
    response = send(fuzz_app, method, rule.rule, **body)
    assert_clear_error(response, answers_json(rule, method, rule.rule))


@fuzz(examples=800)
@given(data=st.data(), as_json=st.booleans())
def test_json_posts_survive_wrong_shapes(
    fuzz_app: Flask, known_id: uuid.UUID, data: st.DataObject, as_json: bool
) -> None:
    posts = [(rule, method) for rule, method in routes(fuzz_app) if method == "POST"]
    rule, method = data.draw(st.sampled_from(posts), label="route")
    path = url(fuzz_app, rule, data.draw(path_values(rule, known_id), label="arguments"))
    if as_json:
        body: dict[str, Any] = {"json": data.draw(json_bodies, label="json")}
    else:
        text = data.draw(broken_json, label="text")
        body = {"data": text, "content_type": "application/json"}
    response = send(fuzz_app, method, path, **body)
    assert_clear_error(response, answers_json(rule, method, path))


@pytest.fixture(scope="module")
def csrf_token(fuzz_app: Flask, known_id: uuid.UUID) -> str:
    """A valid token; the test client keeps the session cookie it belongs to."""
    page = fuzz_app.test_client().get(f"/predictions/{known_id}").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the prediction page"
    return found.group(1)


@fuzz(examples=400)
@given(data=st.data(), fields=form_fields, with_token=st.booleans())
def test_form_posts_survive_with_and_without_a_csrf_token(
    fuzz_app: Flask,
    known_id: uuid.UUID,
    csrf_token: str,
    data: st.DataObject,
    fields: dict[str, str],
    with_token: bool,
) -> None:
    """The forms, also with a valid CSRF token, so that the fields themselves get looked at."""
    posts = [(rule, method) for rule, method in routes(fuzz_app) if method == "POST"]
    rule, method = data.draw(st.sampled_from(posts), label="route")
    path = url(fuzz_app, rule, data.draw(path_values(rule, known_id), label="arguments"))
    fields = {**fields, "csrf_token": csrf_token} if with_token else fields
    response = send(fuzz_app, method, path, data=fields)
    assert_clear_error(response, answers_json(rule, method, path))


@fuzz(examples=150)
@given(filename=hostile_filenames)
def test_stored_filenames_are_always_sanitised(fuzz_app: Flask, filename: str) -> None:
    image = base64.b64encode(digit_image()).decode()
    response = send(
        fuzz_app, "POST", "/api/v1/predictions", json={"image": image, "filename": filename}
    )
    assert response.status_code == 201, response.get_json()
    stored = response.get_json()["filename"]
    assert stored == sanitize_filename(filename)
    assert not set(stored) & {"/", "\\", "\0", "\r", "\n", "\u202e"}
    assert not stored.startswith(".") and len(stored) <= 255


@pytest.fixture(scope="module")
def private_app(make_app: Callable[..., Flask]) -> Flask:
    security = SecuritySettings(rate_limit="", auth_username="ada", auth_password="lovelace")
    return make_app(Settings(security=security))


credentials = st.one_of(
    st.text(max_size=60),
    st.tuples(
        st.sampled_from(["Basic ", "basic ", "BASIC ", "Bearer ", "Digest "]), st.text(max_size=40)
    ).map("".join),
    st.binary(max_size=40).map(lambda raw: "Basic " + base64.b64encode(raw).decode()),
    st.tuples(st.text(max_size=12), st.text(max_size=12)).map(
        lambda pair: (
            "Basic "
            + base64.b64encode(f"{pair[0]}:{pair[1]}".encode("utf-8", "surrogatepass")).decode()
        )
    ),
).filter(lambda value: "\n" not in value and "\r" not in value)  # one header line


@fuzz(examples=400)
@given(path=st.sampled_from(["/history", "/api/v1/predictions"]), header=credentials)
def test_credentials_of_any_shape_are_refused_cleanly(
    private_app: Flask, path: str, header: str
) -> None:
    response = send(private_app, "GET", path, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_the_apps_still_answer_after_all_of_it(fuzz_app: Flask, private_app: Flask) -> None:
    """Run last (pytest keeps the file's order): nothing above broke the process."""
    for app in (fuzz_app, private_app):
        client = app.test_client()
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200  # and Cassandra still answers
