"""The app driven in a real browser (headless Debian chromium through Playwright), as a user would."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from explorer import list_models

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is installed by requirements-test.txt")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_MS = 120_000  # CI shares two cores between the server, the browser and pytest

if not shutil.which(CHROMIUM):
    pytest.fail(f"browser tests need chromium at {CHROMIUM} (.ci/run installs Debian's chromium)", pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    port = free_port()
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--device", "cpu"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"the app exited: {server.stdout.read().decode()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("the app did not answer within 120 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    yield page
    context.close()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def image_src(page, selector: str) -> str | None:
    return page.evaluate(f"() => {{ const i = document.querySelector('{selector} img'); return i ? i.src : null; }}")


def wait_src_change(page, selector: str, old: str | None) -> str:
    page.wait_for_function(f"old => {{ const i = document.querySelector('{selector} img'); return i && i.src !== old; }}", arg=old)
    return image_src(page, selector)


def pick_first_sample(page) -> None:
    page.click("#sample-run")
    page.locator("#sample-gallery .gallery-item").first.click()
    page.wait_for_function("document.querySelector('#sample-picked').innerText.includes('Picked')")


def test_every_tab_loads(page):
    for name, element in [("Sample", "#sample-run"), ("Edit", "#edit-slider-0"), ("Interpolate", "#interp-run"),
                          ("Denoise", "#denoise-run"), ("Compare", "#compare-run")]:
        open_tab(page, name)
        page.wait_for_selector(element, state="visible")


def test_clicking_a_sample_picks_it_and_the_edit_slider_changes_the_image(page):
    pick_first_sample(page)
    assert "#0" in page.inner_text("#sample-picked")
    page.click("#sample-to-edit")
    page.wait_for_selector("#edit-image img")
    before = image_src(page, "#edit-image")
    page.locator("#edit-slider-0 input[type=range]").fill("2.5")
    after = wait_src_change(page, "#edit-image", before)
    assert after and after != before


def test_interpolation_gif_downloads(page, tmp_path):
    open_tab(page, "Interpolate")
    page.click("#interp-use-seeds")
    page.wait_for_function("document.querySelector('#interp-a').innerText.includes('seed 1')")
    page.click("#interp-run")
    link = page.locator("#interp-gif a").first
    link.wait_for()
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "interpolation.gif"
    download.value.save_as(saved)
    assert saved.read_bytes()[:6] in (b"GIF87a", b"GIF89a")


def test_denoise_streams_intermediate_frames_before_the_last(page):
    open_tab(page, "Denoise")
    page.locator("#denoise-run").wait_for()
    # record every x_t frame the page shows, from before the run starts
    page.evaluate("""() => { window.seen = []; new MutationObserver(() => {
        const i = document.querySelector('#denoise-xt img'); const t = document.querySelector('#denoise-equation').innerText;
        if (i && (!window.seen.length || window.seen[window.seen.length - 1].src !== i.src)) window.seen.push({src: i.src, text: t});
    }).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true}); }""")
    page.click("#denoise-run")
    page.wait_for_function("document.querySelector('#denoise-equation').innerText.includes('step 50 of 50')")
    seen = page.evaluate("window.seen")
    assert len({frame["src"] for frame in seen}) >= 3, seen
    assert any("step 50 of 50" not in frame["text"] for frame in seen[:-1])


def test_compare_shows_every_family(page):
    open_tab(page, "Compare")
    page.click("#compare-run")
    shipped = len(list_models())
    page.wait_for_function(f"document.querySelectorAll('#compare-table tbody tr').length >= {shipped}")
    table = page.inner_text("#compare-table")
    for family in ("vae", "gan", "flow", "diffusion"):
        assert f"\t{family}\t" in table or f" {family} " in table, table
