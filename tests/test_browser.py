"""End to end in a real browser: Playwright drives Debian's Chromium against the app served
by gunicorn on the real Cassandra. Draws digits with the mouse and with touch, uploads a
PNG, reads the history, corrects a prediction, and saves screenshots of each page to
artifacts/screenshots/ (look at them: the pages must look right, not only work)."""

from __future__ import annotations

import io
import itertools
import math
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cassandra_server import CassandraServer
from PIL import Image
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from support import REPO_ROOT, gunicorn

from flaskandmnist.classifier import Classifier
from flaskandmnist.mnist import Mnist
from flaskandmnist.storage import PredictionStore

pytestmark = [pytest.mark.browser, pytest.mark.cassandra]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps calling home, which on an offline machine only slows it.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
#: A recognition includes a Cassandra write; the first one also warms the model up.
TIMEOUT_MS = 30_000

Point = tuple[float, float]
Stroke = list[Point]


def _line(*corners: Point, per_segment: int = 12) -> Stroke:
    """Points along straight segments through ``corners`` (coordinates in 0..1 of the pad)."""
    points = [corners[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(corners):
        points += [
            (x0 + (x1 - x0) * t / per_segment, y0 + (y1 - y0) * t / per_segment)
            for t in range(1, per_segment + 1)
        ]
    return points


def _ellipse(cx: float, cy: float, rx: float, ry: float, steps: int = 48) -> Stroke:
    # Starts at the top and overlaps a little at the end, as a hand closes a zero.
    return [
        (cx + rx * math.sin(a), cy - ry * math.cos(a))
        for a in np.linspace(0, 2 * math.pi * 1.04, steps)
    ]


#: Digits as a person draws them on the pad: each is a list of strokes.
DIGITS: dict[int, list[Stroke]] = {
    1: [_line((0.52, 0.16), (0.48, 0.86))],
    0: [_ellipse(0.5, 0.5, 0.22, 0.34)],
    7: [_line((0.27, 0.2), (0.73, 0.2), (0.43, 0.86))],
    4: [_line((0.58, 0.14), (0.24, 0.6), (0.78, 0.6)), _line((0.6, 0.34), (0.6, 0.88))],
}


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyspace(new_keyspace: Callable[[str], str]) -> str:
    return new_keyspace("test_browser")


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"


@pytest.fixture(scope="module")
def server(cassandra: CassandraServer, keyspace: str, server_log: Path) -> Iterator[str]:
    with gunicorn({**cassandra.environ(), "CASSANDRA_KEYSPACE": keyspace}, server_log) as url:
        yield url


@pytest.fixture(scope="module")
def store(cassandra: CassandraServer, keyspace: str) -> Iterator[PredictionStore]:
    """The server's keyspace, read directly: what the browser did must be in Cassandra."""
    store = PredictionStore.connect(cassandra.settings(keyspace))
    yield store
    store.close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        pytest.fail(
            f"Chromium is not installed ({CHROMIUM}): run scripts/install-browser.sh "
            "(./scripts/test.sh does)",
            pytrace=False,
        )
    browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="module", autouse=True)
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


class Problems:
    """Script errors and console errors (a CSP violation is one) seen by a page."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda error: self.seen.append(f"page error: {error}"))
        page.on("console", self._console)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.seen.append(f"console: {message.text}")


@pytest.fixture
def problems() -> Iterator[Problems]:
    found = Problems()
    yield found
    assert found.seen == []


def _context(browser: Browser, server: str, **options: object) -> BrowserContext:
    context = browser.new_context(base_url=server, **options)
    context.set_default_timeout(TIMEOUT_MS)
    return context


# --- helpers ------------------------------------------------------------------------------


def _on_pad(page: Page, stroke: Stroke) -> list[Point]:
    box = page.locator("[data-pad]").bounding_box()
    assert box is not None
    return [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]


def draw_with_mouse(page: Page, strokes: list[Stroke]) -> None:
    for stroke in strokes:
        points = _on_pad(page, stroke)
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=2)
        page.mouse.up()


def draw_with_touch(page: Page, strokes: list[Stroke]) -> None:
    """Real touch input: Chromium's touch events (CDP), which it turns into pointer events."""
    cdp = page.context.new_cdp_session(page)
    for stroke in strokes:
        points = _on_pad(page, stroke)
        for kind, (x, y) in [
            ("touchStart", points[0]),
            *(("touchMove", point) for point in points[1:]),
        ]:
            # An id of its own: with the default (0) Chromium drops the next tap's click.
            touch = {"x": x, "y": y, "id": 1}
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [touch]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def recognise(page: Page, button: str) -> dict[str, Any]:
    """Clicks (or taps) a Recognise button; returns the API's answer once it is shown."""
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/predictions") and r.request.method == "POST"
    ) as answer:
        page.locator(button).click()
    assert answer.value.status == 201, answer.value.text()
    result = answer.value.json()
    expect(page.locator("[data-result] [data-field=digit]")).to_have_text(str(result["digit"]))
    return result


def mnist_png(mnist: Mnist, classifier: Classifier, label: int, side: int = 196) -> bytes:
    """A typical MNIST test image of ``label`` (of the first 20, the one the model is surest
    of), as a person would scan it: black on white, larger."""
    candidates = mnist.test_images[mnist.test_labels == label][:20]
    surest = classifier.probabilities(candidates / 255.0)[:, label].argmax()
    image = Image.fromarray(255 - candidates[surest]).resize((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def corrections_of(store: PredictionStore, result: dict[str, Any]) -> list[int]:
    """The true digits stored for the prediction the API answered with ``result``."""
    prediction = store.get(uuid.UUID(result["id"]))
    assert prediction is not None
    return [
        c.true_digit for c in store.corrections(prediction.day) if c.prediction_id == prediction.id
    ]


# --- tests --------------------------------------------------------------------------------


def test_desktop_draw_upload_history_and_correct(
    browser: Browser,
    server: str,
    store: PredictionStore,
    mnist: Mnist,
    classifier: Classifier,
    problems: Problems,
) -> None:
    context = _context(browser, server, viewport=DESKTOP)
    page = problems.watch(context.new_page())
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Which digit is it?")
    recognise_drawing = ".draw-card [data-action=recognise]"
    expect(page.locator(recognise_drawing)).to_be_disabled()
    # Marks this document: still there after the results means no page was reloaded.
    page.evaluate("window.samePage = true")

    drawn: dict[int, dict[str, Any]] = {}
    for digit, strokes in DIGITS.items():
        if drawn:  # the previous digit is still on the pad
            page.locator("[data-action=clear]").click()
            expect(page.locator(recognise_drawing)).to_be_disabled()
        draw_with_mouse(page, strokes)
        if digit == 7:
            # A stray stroke, taken back: only the 7 is sent.
            draw_with_mouse(page, [_line((0.1, 0.95), (0.9, 0.95))])
            page.locator("[data-action=undo]").click()
        drawn[digit] = recognise(page, recognise_drawing)
        assert drawn[digit]["digit"] == digit, f"drew {digit}, the app read {drawn[digit]}"
        assert drawn[digit]["source"] == "canvas"
        if digit == 7:
            page.screenshot(path=SCREENSHOTS / "desktop-home-drawing.png", full_page=True)
    assert page.evaluate("window.samePage") is True

    # The result card: confidence, eleven bars (the digits, then "not a digit"), the 28x28
    # input, the link to the record.
    last = drawn[4]
    card = page.locator("[data-result]")
    expect(card.locator("[data-field=confidence]")).to_have_text(re.compile(r"\d+(\.\d)?%"))
    expect(card.locator("meter")).to_have_count(11)
    expect(card.locator("[data-field=not-a-digit]")).to_be_hidden()
    assert card.locator("meter").nth(4).evaluate("m => m.value") == pytest.approx(
        last["probabilities"][4]
    )
    expect(card.locator("li.is-top")).to_have_attribute("data-digit", "4")
    model_input = card.locator("img[data-field=input]")
    expect(model_input).to_have_attribute("src", last["input_url"])
    assert model_input.evaluate("img => img.complete && img.naturalWidth") == 28
    expect(card.locator("[data-field=record]")).to_have_attribute("href", last["page_url"])
    expect(card.locator("[data-field=origin]")).to_have_text("Result for your drawing")

    # Upload through the file input: a preview, then the result in the same card.
    upload = page.locator("[data-upload]")
    expect(upload.locator("button[type=submit]")).to_be_disabled()  # nothing chosen yet
    upload.locator("input[type=file]").set_input_files(
        {
            "name": "scanned-three.png",
            "mimeType": "image/png",
            "buffer": mnist_png(mnist, classifier, 3),
        }
    )
    expect(upload.locator("[data-preview]")).to_be_visible()
    expect(upload.locator("[data-file-name]")).to_contain_text("scanned-three.png")
    uploaded = recognise(page, "[data-upload] button[type=submit]")
    assert (uploaded["digit"], uploaded["source"]) == (3, "upload")
    assert uploaded["filename"] == "scanned-three.png"
    assert page.evaluate("window.samePage") is True
    # The pad still shows the 4: the card says which input its answer belongs to.
    expect(card.locator("[data-field=origin]")).to_have_text(
        "Result for the file scanned-three.png"
    )

    # Correction from the result card (through the API, without leaving the page).
    card.locator(".digit-buttons button", has_text="8").click()
    expect(card.locator("[data-correction-status]")).to_have_text(
        "Thank you: corrected to 8 (the model said 3)."
    )
    expect(card.locator(".digit-buttons button[aria-pressed=true]")).to_have_text("8")
    assert corrections_of(store, uploaded) == [8]
    page.screenshot(path=SCREENSHOTS / "desktop-home-upload.png", full_page=True)

    # History: newest first, both the drawings and the upload, with thumbnails.
    page.get_by_role("link", name="History").click()
    expect(page).to_have_url(f"{server}/history")
    items = page.locator("a.history-item")
    ids = [href.rsplit("/", 1)[1] for href in items.evaluate_all("a => a.map(e => e.href)")]
    assert ids[: len(drawn) + 1] == [uploaded["id"], *(r["id"] for r in reversed(drawn.values()))]
    first = items.first
    expect(first.locator(".history-digit")).to_have_text("3")
    # The correction just made shows beside the model's answer.
    expect(first.locator(".history-correction")).to_have_text("Corrected to 8")
    assert first.locator("img.thumb").evaluate("img => img.complete && img.naturalWidth") == 28
    page.screenshot(path=SCREENSHOTS / "desktop-history.png", full_page=True)

    # Filter by digit, then open the detail page of the drawn 7 and correct it.
    page.locator(".filters a", has_text="7").click()
    expect(page).to_have_url(f"{server}/history?digit=7")
    expect(items).to_have_count(1)
    items.first.click()
    expect(page).to_have_url(f"{server}{drawn[7]['page_url']}")
    expect(page.locator("h1")).to_have_text("Recognised as 7")
    original = page.locator(".original-frame img")
    assert original.evaluate("img => img.complete && img.naturalWidth") == 140
    page.locator("[data-correction] button", has_text="1").click()
    expect(page.locator(".notice-success")).to_have_text(
        "Thank you: corrected to 1 (the model said 7)."
    )
    # The chosen digit stays marked on the record's page.
    expect(page.locator("[data-correction] button[aria-pressed=true]")).to_have_text("1")
    assert corrections_of(store, drawn[7]) == [1]
    page.screenshot(path=SCREENSHOTS / "desktop-detail.png", full_page=True)
    context.close()


def test_phone_draws_with_touch(
    browser: Browser, server: str, store: PredictionStore, problems: Problems
) -> None:
    context = _context(
        browser, server, viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True
    )
    page = problems.watch(context.new_page())
    page.goto("/")
    pad = page.locator("[data-pad]")
    # The pad draws at the screen's density (sharp lines) and fits the narrow screen.
    assert pad.evaluate("c => c.width / c.getBoundingClientRect().width") == pytest.approx(3)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    pad.evaluate(
        "c => { window.pointerTypes = new Set();"
        " c.addEventListener('pointerdown', e => window.pointerTypes.add(e.pointerType)); }"
    )
    scrolled = page.evaluate("window.scrollY")

    draw_with_touch(page, DIGITS[7])
    assert page.evaluate("[...window.pointerTypes]") == ["touch"]
    assert page.evaluate("window.scrollY") == scrolled  # drawing does not scroll the page
    # A person's pause between lifting the finger and tapping: headless Chromium drops the
    # click of a tap that comes within about 0.4 s of the end of a touch stroke.
    page.wait_for_timeout(800)
    with page.expect_response(lambda r: r.url.endswith("/api/v1/predictions")) as answer:
        page.locator("[data-action=recognise]").tap()
    result = answer.value.json()
    assert result["digit"] == 7, f"drew 7 by touch, the app read {result}"
    expect(page.locator("[data-result] [data-field=digit]")).to_have_text("7")
    expect(page.locator("[data-result]")).to_be_in_viewport()
    assert store.get(uuid.UUID(result["id"])) is not None
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SCREENSHOTS / "phone-home-result.png", full_page=True)

    page.goto("/history")
    expect(page.locator("a.history-item").first).to_have_attribute("href", result["page_url"])
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=SCREENSHOTS / "phone-history.png", full_page=True)
    page.goto(result["page_url"])
    page.screenshot(path=SCREENSHOTS / "phone-detail.png", full_page=True)
    context.close()


def test_a_scribble_is_answered_not_a_digit_in_words_and_can_be_corrected(
    browser: Browser, server: str, store: PredictionStore, problems: Problems
) -> None:
    context = _context(browser, server, viewport=DESKTOP)
    page = problems.watch(context.new_page())
    page.goto("/")
    draw_with_mouse(page, [_line((0.15, 0.5), (0.85, 0.45))])
    with page.expect_response(lambda r: r.url.endswith("/api/v1/predictions")) as answer:
        page.locator(".draw-card [data-action=recognise]").click()
    assert answer.value.status == 422
    stored = answer.value.json()["prediction"]

    card = page.locator("[data-result]")
    expect(card.locator("[data-field=digit]")).to_have_text("Not a digit")
    expect(card.locator("[data-field=not-a-digit]")).to_contain_text(
        "does not look like a single digit"
    )
    expect(card.locator("li.is-top")).to_have_attribute("data-digit", "x")
    expect(page.locator("[data-draw-error]")).to_be_hidden()
    page.screenshot(path=SCREENSHOTS / "desktop-not-a-digit.png", full_page=True)
    with page.expect_response(lambda r: r.url.endswith("/correction")):
        card.locator("button[name=digit][value='1']").click()
    expect(card.locator("[data-correction-status]")).to_contain_text("not a digit")
    assert corrections_of(store, stored) == [1]

    page.goto("/history")
    expect(page.locator("a.history-item").first.locator(".history-digit")).to_have_text(
        "Not a digit"
    )
    context.close()
    # Chromium logs every answer that is not 2xx; this 422 was the one asked for.
    problems.seen.remove(
        "console: Failed to load resource: the server responded with a status of 422 "
        "(UNPROCESSABLE ENTITY)"
    )


def test_gunicorn_says_where_it_listens(server: str, server_log: Path) -> None:
    # With reuse_port the master holds no socket; gunicorn's own line would name none.
    assert f"Listening at: {server} " in server_log.read_text()


def test_api_docs_render_the_openapi_document(
    browser: Browser, server: str, problems: Problems
) -> None:
    context = _context(browser, server, viewport=DESKTOP)
    page = problems.watch(context.new_page())
    page.goto("/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("flaskandmnist API")
    operations = page.locator(".swagger-ui .opblock-summary-path")
    expect(operations.first).to_be_visible()
    # Swagger UI puts zero-width spaces before each "/" so that long paths can wrap.
    paths = [text.replace("\u200b", "").strip() for text in operations.all_text_contents()]
    assert "/predictions" in paths
    page.screenshot(path=SCREENSHOTS / "api-docs.png", full_page=True)
    context.close()
