"""The Playground serving a class, in a real browser: more players than its short lane all get frames, a player
beyond the Play lane sees their place in the queue, a closed tab or a Pause frees the place, a Play at its limit
says so, and the mode-collapse preset sets the controls and plays.

As in test_browser, every wait is for a state of the page, never for a length of time (Playwright's timeouts
are off; pytest.ini's hang guard fails a stuck test). Two tests need a server with a smaller Play lane or a
shorter limit than the app's: they start `serve` with that one constant of explorer/ui/playground.py changed."""

from __future__ import annotations

import pytest

from conftest import running_app
from explorer.ui.playground import STEP_UPDATES
from test_browser import (PAUSED_STEP, TIMEOUT_MS, app_url, browser, image_src, open_tab, page,  # noqa: F401 (fixtures)
                          wait_src_change, watch_for)

STEP = "document.querySelector('#play-caption').innerText.match(/step (\\d+)/)"
QUEUED = "document.querySelector('#play-plane').innerText.includes('queue')"


def changed(**constants) -> str:
    """Setup code for conftest.running_app: some of explorer.ui.playground's constants changed."""
    return "import explorer.ui.playground as playground\n" + "".join(
        f"playground.{name} = {value!r}\n" for name, value in constants.items())


@pytest.fixture(scope="module")
def one_seat_url(tmp_path_factory):
    """The app with a Play lane of one: a second player is queued for as long as the first plays."""
    with running_app(tmp_path_factory.mktemp("one-seat"), changed(PLAYERS=1)) as url:
        yield url


@pytest.fixture(scope="module")
def capped_url(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("capped"), changed(PLAY_LIMIT_S=3)) as url:
        yield url


def playground_page(browser, url):  # noqa: F811 (the fixture's name)
    """A fresh browser context (its own session, as another person's) on the Playground tab, its run drawn."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()  # noqa: F811
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    open_tab(page, "Playground")
    page.wait_for_function("document.querySelector('#play-caption').innerText.includes('step 0')")
    return page


def wait_step_above(page, step: int) -> int:  # noqa: F811
    """Wait until the caption shows a step above `step`; -> that step (read in the same check)."""
    shown = page.wait_for_function(f"() => {{ const m = {STEP}; return m && +m[1] > {step} && m[1]; }}")
    return int(shown.json_value())


def test_more_players_than_the_short_lane_all_see_frames_at_once(browser, app_url):  # noqa: F811
    """Five players, one more than the lane of 4 Reset and Step share, all stream at the same time (each caption
    says it is trained in turns with 4 others; before, the fifth waited for one of the first four to stop)."""
    pages = [playground_page(browser, app_url) for _ in range(5)]
    try:
        for each in pages:
            each.click("#play-play")
        for each in pages:
            each.wait_for_function("document.querySelector('#play-caption').innerText.includes('with 4 other Plays')")
            wait_step_above(each, 0)
    finally:
        for each in pages:
            each.context.close()


def test_a_queued_player_sees_their_place_and_gets_frames_once_a_tab_closes(browser, one_seat_url):  # noqa: F811
    first, second = playground_page(browser, one_seat_url), playground_page(browser, one_seat_url)
    try:
        first.click("#play-play")
        wait_step_above(first, 0)
        second.click("#play-play")
        second.wait_for_function(QUEUED)  # Gradio's own queue display, on the plane: "queue: 1/1"
        assert "queue: 1/1" in second.inner_text("#play-plane")
        assert "step 0" in second.inner_text("#play-caption")  # nothing of its own trains while it waits
        assert second.query_selector("#play-plane img") is not None  # the plane keeps its frame meanwhile
        first.context.close()  # nobody watches the first Play any more: its place is freed
        wait_step_above(second, 0)
        second.wait_for_function(f"!{QUEUED}")
    finally:
        for each in (first, second):
            each.context.close()


def test_a_paused_player_holds_no_place(browser, one_seat_url):  # noqa: F811
    first, second = playground_page(browser, one_seat_url), playground_page(browser, one_seat_url)
    try:
        first.click("#play-play")
        wait_step_above(first, 0)
        second.click("#play-play")
        second.wait_for_function(QUEUED)
        watch_for(first, "paused", PAUSED_STEP)
        first.click("#play-pause")
        first.wait_for_function("window.paused")
        wait_step_above(second, 0)  # the paused tab is still open, and holds nothing
    finally:
        for each in (first, second):
            each.context.close()


def test_a_play_at_its_limit_says_so_and_play_goes_on(browser, capped_url):  # noqa: F811
    page = playground_page(browser, capped_url)  # noqa: F811
    try:
        page.click("#play-play")
        stopped = page.wait_for_function("""() => {
            const text = document.querySelector('#play-caption').innerText;
            return text.includes('Stopped after 3 seconds') && text; }""").json_value()
        assert "(the limit per Play); press Play to go on" in stopped
        at = int(stopped.split("step ")[1].split()[0])
        assert at > 0
        page.click("#play-play")  # the same run goes on from where the limit stopped it
        assert wait_step_above(page, at) > at
        watch_for(page, "paused", PAUSED_STEP)
        page.click("#play-pause")
        page.wait_for_function("window.paused")
    finally:
        page.context.close()


def test_the_mode_collapse_preset_sets_the_controls_and_plays(page):  # noqa: F811
    open_tab(page, "Playground")
    page.wait_for_function("document.querySelector('#play-caption').innerText.includes('step 0')")
    plane = image_src(page, "#play-plane")
    page.locator("#play-family").get_by_text("flow", exact=True).click()  # somewhere else, and playing:
    # Play once the flow's fresh run is drawn, as a person would. Pressed at once, it raced that reset, whose
    # `cancels` could land on the new Play (CI once waited here for ever, the caption at the flow's step 0)
    wait_src_change(page, "#play-plane", plane)
    page.click("#play-play")
    page.wait_for_function("document.querySelector('#play-caption').innerText.includes('negative log-likelihood')")
    page.click("#play-preset-collapse")
    assert "mode collapse" in page.inner_text("#play-preset-note")
    # the preset's own Play: a cross-entropy GAN (its caption names the discriminator) past update 200
    shown = page.wait_for_function(f"""() => {{
        const text = document.querySelector('#play-caption').innerText, m = {STEP};
        return text.includes('discriminator loss') && m && +m[1] >= 200 && text; }}""").json_value()
    assert "modes covered: 1 of 2 (points within 1 of each: 0%," in shown, shown  # all on the right-hand mode
    assert page.locator("#play-family input[value='GAN']").is_checked()
    assert page.locator("#play-loss input[value='cross-entropy']").is_checked()
    assert page.input_value("#play-data input") == "two separated modes"
    assert page.input_value("#play-seed input") == "2"
    page.click("#play-play")  # a second press while it plays (the teacher's) starts no second loop:
    watch_for(page, "paused", PAUSED_STEP)
    page.click("#play-pause")  # one Pause stops it all
    at = int(page.wait_for_function("window.paused").json_value())
    page.click("#play-step")  # nothing else trains this run: a Step moves it by exactly its updates
    stepped = wait_step_above(page, at)
    assert stepped == at + STEP_UPDATES, (at, stepped)
