"""reelgate studio in a real browser: Playwright drives Debian's chromium
(headless) against `reelgate serve` on loopback. The page signs in, makes a
text video and a start-image video, watches them reach completed, plays one,
extends one, deletes one, shows a hostile prompt as text, and fits a phone.

Every step saves a screenshot, desktop (1280x800, light theme) and phone
(375x812, dark theme), into `REELGATE_SCREENSHOTS` or
`<temp dir>/reelgate-studio-screenshots`; the run prints the folder."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reelgate.config import Settings
from reelgate.store.db import Database
from reelgate.store.tokens import TokenStore
from reelgate.testing import Server, png_bytes, running, textured_image

pytestmark = pytest.mark.slow  # a server process and a browser

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
if CHROMIUM is None:
    pytest.skip(
        "no chromium on this machine (.ci/run installs Debian's with apt)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect
# Assertions wait this long for the page to catch up: the machine is shared,
# and a render or a poll can take a few seconds longer under load.
expect.set_options(timeout=15_000)

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
HOSTILE = "<img src=x onerror=alert(1)>"
RENDER_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest) -> Path:
    folder = Path(
        os.environ.get("REELGATE_SCREENSHOTS")
        or Path(tempfile.gettempdir()) / "reelgate-studio-screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(f"\nreelgate studio screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def studio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # "info" logs every request: the token must appear in none of them
    server = Server(tmp_path_factory.mktemp("studio") / "data", workers=2, log_level="info")
    with running(server) as srv:
        yield srv


@pytest.fixture(scope="module")
def tokens(studio_server: Server) -> Iterator[TokenStore]:
    """The server's tokens, made and revoked here (as `reelgate tokens` does,
    without a process each time)."""
    db = Database(Settings(data_dir=studio_server.data_dir).resolved_database_url)
    yield TokenStore(db)
    db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


class Studio:
    """One browser context on the studio page, recording what the page
    requested, the dialogs it opened and its errors."""

    def __init__(
        self, browser: Any, server: Server, shots: Path, name: str, phone: bool = False
    ) -> None:
        self.server = server
        self.shots = shots
        self.name = name
        self.phone = phone
        self.context = browser.new_context(
            viewport=PHONE if phone else DESKTOP,
            color_scheme="dark" if phone else "light",
            has_touch=phone,
            is_mobile=phone,
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.urls: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.urls.append(request.url))
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)
        self.step = 0

    def _console(self, message: Any) -> None:
        """Errors the page logs (a CSP violation among them); answers the
        server refused on purpose are the page's business, not errors."""
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self) -> Any:
        response = self.page.goto(self.server.url + "/")
        expect(self.page.get_by_label("API token")).to_be_visible()
        return response

    def shot(self, what: str) -> None:
        """A screenshot of this step; on a phone, the page must not scroll sideways."""
        self.step += 1
        with contextlib.suppress(sync_api.TimeoutError):  # players settled, not spinning
            self.page.wait_for_function(
                "[...document.querySelectorAll('video')]"
                ".every((v) => v.readyState >= v.HAVE_CURRENT_DATA)",
                timeout=3000,
            )
        self.page.screenshot(
            path=self.shots / f"{self.name}-{self.step:02d}-{what}.png", full_page=True
        )
        if self.phone:
            width = self.page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{what}: the page is {width} px wide"

    def sign_in(self, token: str) -> None:
        self.page.get_by_label("API token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_label("Prompt", exact=True)).to_be_visible()
        expect(self.page.locator("#model option")).not_to_have_count(0)
        # the first gallery load has answered (it names the page once it has)
        expect(self.page.locator("#page-label")).to_have_text("Page 1")

    def watch_cards(self) -> None:
        """Record every state and progress value each gallery card shows."""
        self.page.evaluate(
            """() => {
              window.seenStates = [];
              const list = document.querySelector('#gallery-list');
              const record = () => {
                for (const card of list.querySelectorAll('[data-generation-id]')) {
                  const bar = card.querySelector('progress');
                  window.seenStates.push([card.dataset.generationId, card.dataset.state,
                                          bar.hidden ? null : bar.value]);
                }
              };
              new MutationObserver(record).observe(list, {
                subtree: true, childList: true, attributes: true,
                attributeFilter: ['data-state', 'value', 'hidden'],
              });
            }"""
        )

    def seen(self, generation_id: str) -> list[tuple[str, float | None]]:
        states = self.page.evaluate("window.seenStates")
        return [(state, value) for gid, state, value in states if gid == generation_id]

    def choose(self, resolution: str = "540p", duration: str = "5s") -> None:
        self.page.get_by_label("Resolution").select_option(resolution)
        self.page.get_by_label("Duration").select_option(duration)

    def submit(self, path: str) -> str:
        """Press Generate; the id the server gave the new generation."""
        with self.page.expect_response(
            lambda r: r.url.split("?")[0].endswith(path) and r.request.method == "POST"
        ) as answer:
            self.page.get_by_role("button", name="Generate").click()
        body = answer.value.json()
        assert answer.value.status == 201, body
        generation_id: str = body["id"]
        expect(self.card(generation_id)).to_be_visible()
        return generation_id

    def card(self, generation_id: str) -> Any:
        return self.page.locator(f'#gallery-list [data-generation-id="{generation_id}"]')

    def wait_completed(self, generation_id: str) -> Any:
        card = self.card(generation_id)
        expect(card).to_have_attribute(
            "data-state", re.compile("completed|failed"), timeout=RENDER_TIMEOUT_MS
        )
        expect(card.locator(".failure")).to_be_hidden()
        expect(card).to_have_attribute("data-state", "completed")
        expect(card.locator(".badge")).to_have_text("Completed")
        return card

    def plays(self, generation_id: str) -> tuple[float, float]:
        """(currentTime after play(), a moment later) of the card's <video>."""
        times: list[float] = self.page.evaluate(
            """async (id) => {
              const video = document.querySelector(`[data-generation-id="${id}"] video`);
              video.muted = true;
              await video.play();
              const first = video.currentTime;
              await new Promise((done) => setTimeout(done, 1000));
              const later = video.currentTime;
              video.pause();
              return [first, later];
            }""",
            generation_id,
        )
        return times[0], times[1]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def studio(
    browser: Any, studio_server: Server, shots: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Studio]]:
    opened: list[Studio] = []

    def open_studio(name: str, phone: bool = False) -> Studio:
        page = Studio(browser, studio_server, shots, name, phone)
        opened.append(page)
        return page

    yield open_studio
    for page in opened:
        page.close()


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_make_watch_play_extend_and_delete_videos(
    studio: Callable[..., Studio],
    studio_server: Server,
    tokens: TokenStore,
    tmp_path: Path,
    phone: bool,
) -> None:
    token = tokens.create("studio-phone" if phone else "studio-desktop")[1]
    s = studio("phone" if phone else "desktop", phone)
    s.open()
    s.shot("sign-in")
    s.sign_in(token)
    expect(s.page.get_by_text("Nothing here yet")).to_be_visible()
    s.shot("empty-gallery")
    s.watch_cards()

    # a text video, watched until it completes, then played
    s.page.get_by_label("Prompt", exact=True).fill("a lighthouse in a storm at dusk")
    s.choose()
    s.shot("text-video-form")
    text_id = s.submit("/luma/generations")
    s.shot("text-video-running")
    card = s.wait_completed(text_id)
    running = [value for state, value in s.seen(text_id) if state in ("queued", "dreaming")]
    assert running, s.seen(text_id)  # the card showed it running, with its progress bar
    assert all(value is not None for value in running)
    expect(card.locator(".prompt")).to_have_text("a lighthouse in a storm at dusk")
    expect(card.locator(".settings")).to_contain_text("540p")
    first, later = s.plays(text_id)
    assert later > first, (first, later)
    s.shot("text-video-completed")

    # a start-image video from a file on disk
    picture = tmp_path / "start.png"
    picture.write_bytes(png_bytes(textured_image(640, 360, seed=3)))
    s.page.get_by_label("Prompt", exact=True).fill("the sea rises toward the camera")
    s.page.locator("#start-file").set_input_files(picture)
    expect(s.page.get_by_role("img", name="Start frame preview")).to_be_visible()
    s.choose()
    s.shot("image-video-form")
    image_id = s.submit("/luma/generations")
    s.wait_completed(image_id)
    expect(s.card(image_id).locator(".settings")).to_contain_text("from frames")
    s.shot("image-video-completed")

    # both in the gallery, newest first, each with its id and a thumbnail
    ids = s.page.locator("#gallery-list > li").evaluate_all(
        "cards => cards.map(card => card.dataset.generationId)"
    )
    assert ids[:2] == [image_id, text_id]
    for generation_id in ids[:2]:
        expect(s.card(generation_id).locator("video")).to_have_attribute(
            "poster", re.compile(r"/assets/")
        )
        expect(
            s.card(generation_id).get_by_role("link", name=re.compile("Download"))
        ).to_be_visible()

    # extend the text video forward (the official dialect: no prompt enhancement)
    s.card(text_id).get_by_role("button", name="Extend").click()
    expect(s.page.locator("#extend-source")).to_have_value(text_id)
    expect(s.page.get_by_label("Prompt enhancement")).to_be_disabled()
    s.page.get_by_label("Prompt", exact=True).fill("ab")
    s.shot("extend-form")
    s.page.get_by_role("button", name="Generate").click()
    # the server's own refusal, shown next to the form
    expect(s.page.locator("#create-error")).to_have_text(
        "prompt must be between 3 and 5000 characters"
    )
    s.page.get_by_label("Prompt", exact=True).fill("the storm clears and the sun comes out")
    extend_id = s.submit("/dream-machine/v1/generations")
    s.wait_completed(extend_id)
    expect(s.card(extend_id).locator(".settings")).to_contain_text(f"Extend of {text_id[:8]}")
    s.shot("extended")

    # "use the last frame" puts the video's last frame in the start frame
    s.card(extend_id).get_by_role("button", name="Use last frame").click()
    expect(s.page.locator("#start-url")).to_have_value(re.compile(r"/assets/.+last"))
    expect(s.page.get_by_role("img", name="Start frame preview")).to_be_visible()
    expect(s.page.get_by_label("Prompt enhancement")).to_be_enabled()

    # delete the start-image video
    s.card(image_id).get_by_role("button", name="Delete").click()
    s.shot("delete-confirm")
    s.card(image_id).get_by_role("button", name="Delete it").click()
    expect(s.card(image_id)).to_have_count(0)
    with studio_server.http(token) as client:
        assert client.get(f"/dream-machine/v1/generations/{image_id}").status_code == 404
    expect(s.page.locator("#gallery-list > li")).to_have_count(2)
    s.shot("after-delete")

    # the token went only in headers: never in a URL, a cookie or the server's log
    assert s.urls and not [url for url in s.urls if token in url]
    assert s.context.cookies() == []
    log = studio_server.log_path.read_text(errors="replace")
    assert "GET /dream-machine/v1/generations" in log and token not in log
    assert s.dialogs == [] and s.errors == [], (s.dialogs, s.errors)


def test_a_wrong_or_revoked_token_is_refused_with_a_clear_message(
    studio: Callable[..., Studio], studio_server: Server, tokens: TokenStore
) -> None:
    token = tokens.create("studio-revoked")[1]
    signed_in = studio("desktop-revoked")
    signed_in.open()
    signed_in.sign_in(token)
    tokens.revoke("studio-revoked")

    for phone in (False, True):
        s = studio("phone-wrong-token" if phone else "desktop-wrong-token", phone)
        s.open()
        s.page.get_by_label("API token").fill("not-a-real-token")
        s.page.get_by_role("button", name="Sign in").click()
        alert = s.page.get_by_role("alert")
        expect(alert).to_contain_text("was not accepted: it is wrong or has been revoked")
        expect(alert).to_contain_text("invalid or revoked token")  # the server's words
        expect(s.page.get_by_label("Prompt", exact=True)).to_be_hidden()
        s.shot("wrong-token")
        assert s.page.evaluate("Object.keys(localStorage)") == []

    # the revoked token stops working once the server's short auth cache lets go
    deadline = time.monotonic() + 10
    with studio_server.http(token) as client:
        while client.get("/reelgate/v1/models").status_code != 401:
            assert time.monotonic() < deadline, "the revoked token still works"
            time.sleep(0.2)
    signed_in.page.get_by_role("button", name="Refresh").click()
    alert = signed_in.page.get_by_role("alert")
    expect(alert).to_contain_text("Your saved API token is no longer accepted")
    expect(signed_in.page.get_by_label("API token")).to_be_visible()
    signed_in.shot("revoked-token")
    assert signed_in.page.evaluate("Object.values(localStorage)") == []


def test_forget_token_signs_out_and_forgets(
    studio: Callable[..., Studio], tokens: TokenStore
) -> None:
    token = tokens.create("studio-forget")[1]
    s = studio("desktop-forget")
    s.open()
    s.sign_in(token)
    assert token in s.page.evaluate("Object.values(localStorage)")
    s.page.reload()  # the kept token signs in again
    expect(s.page.get_by_label("Prompt", exact=True)).to_be_visible()
    s.page.get_by_role("button", name="Forget token").click()
    expect(s.page.get_by_label("API token")).to_be_visible()
    assert s.page.evaluate("Object.values(localStorage)") == []
    s.page.reload()
    expect(s.page.get_by_label("API token")).to_be_visible()


def test_hostile_prompts_and_failure_reasons_render_as_text(
    studio: Callable[..., Studio], tokens: TokenStore
) -> None:
    token = tokens.create("studio-hostile")[1]
    s = studio("desktop-hostile")
    s.open()
    s.sign_in(token)
    s.page.get_by_label("Prompt", exact=True).fill(HOSTILE)
    s.choose()
    hostile_id = s.submit("/luma/generations")
    expect(s.card(hostile_id).locator(".prompt")).to_have_text(HOSTILE)

    # a start frame nobody serves: the failure reason is shown, as text
    s.page.get_by_label("Prompt", exact=True).fill("a quiet harbour")
    s.page.locator("#start-url").fill(f"http://127.0.0.1:9/{HOSTILE}.png")
    failing_id = s.submit("/luma/generations")
    card = s.card(failing_id)
    expect(card).to_have_attribute("data-state", "failed", timeout=RENDER_TIMEOUT_MS)
    expect(card.locator(".failure")).to_contain_text(
        f"Failed: cannot fetch http://127.0.0.1:9/{HOSTILE}"
    )
    s.wait_completed(hostile_id)
    s.shot("hostile-prompt")
    assert s.page.locator("#gallery-list img[src='x']").count() == 0
    assert s.dialogs == [] and s.errors == [], (s.dialogs, s.errors)


def test_keyboard_phone_width_and_headers(
    studio: Callable[..., Studio], tokens: TokenStore
) -> None:
    token = tokens.create("studio-keyboard")[1]
    s = studio("phone-keyboard", phone=True)
    response = s.open()
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe" not in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"

    # keyboard only: to the token field, sign in, then Tab to the prompt and Generate
    reached = []
    for _ in range(10):
        s.page.keyboard.press("Tab")
        reached.append(s.page.evaluate("document.activeElement.id"))
        if reached[-1] == "token":
            break
    assert reached[-1] == "token", reached
    outline = s.page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # a visible focus ring
    s.page.keyboard.type(token)
    s.page.keyboard.press("Enter")
    expect(s.page.get_by_label("Prompt", exact=True)).to_be_visible()
    s.page.locator("#main").focus()  # Tab on from the top of the page
    order: list[str] = []
    for _ in range(40):
        s.page.keyboard.press("Tab")
        order.append(s.page.evaluate("document.activeElement.id"))
        if order[-1] == "generate":
            break
    assert "prompt" in order and order[-1] == "generate", order
    s.shot("keyboard-focus-generate")
    assert s.dialogs == [] and s.errors == [], (s.dialogs, s.errors)
