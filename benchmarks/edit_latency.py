"""Edit latency in a real browser: `python benchmarks/edit_latency.py [--edit-only]`.

Starts, in the same run, the app and a bare Gradio page with one slider redrawing one image of the same
size, drives both in headless chromium, and prints the median time from a slider input to the new image
being shown, per model, with the ratio to the bare page (target: within 1.2x for VAE, GAN and flow). It also
times the Denoise tab from pressing Run to the first streamed frame (target: 300 ms), and cold start
(`python app.py` until the page answers), and encoding an uploaded digit with each family from pressing
Encode to the reconstruction being shown (targets: VAE and flow within 1 s, GAN inversion within 20 s).
Slider timings are taken in the page with performance.now()."""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BARE_PAGE = textwrap.dedent("""
    import sys, numpy as np, gradio as gr
    with gr.Blocks() as demo:
        image = gr.Image(type="numpy", height=300, width=300, elem_id="edit-image")
        slider = gr.Slider(-3, 3, value=0, step=0.1, elem_id="edit-slider-0")
        slider.input(lambda v: np.full((280, 280), int((v + 3) * 40), np.uint8), slider, image,
                     trigger_mode="always_last", show_progress="hidden")
        demo.load(lambda: np.zeros((280, 280), np.uint8), None, image)
    demo.queue(default_concurrency_limit=4).launch(server_port=int(sys.argv[1]))
""")
# Two end points per move, both from the page's own clock: when the <img> gets its new src (a
# MutationObserver, so not rounded to a frame), and when that image is decoded and the frame that paints it
# begins (what a person sees; it includes fetching the image file the response names).
MOVE_SLIDER = """async ([value, slider]) => {
    const box = document.querySelector('#edit-image');
    const image = () => box.querySelector('img');
    const old = image() ? image().src : null;
    const input = document.querySelector(slider + ' input[type=range]');
    let changed = null;
    const shown = new Promise(done => {
        const check = () => {
            const img = image();
            if (changed === null && img && img.src !== old) { changed = performance.now(); observer.disconnect(); done(img); }
        };
        const observer = new MutationObserver(check);
        observer.observe(box, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
    });
    const start = performance.now();
    input.value = value;
    input.dispatchEvent(new Event('input', {bubbles: true}));
    const img = await shown;
    await img.decode().catch(() => null);
    await new Promise(frame => requestAnimationFrame(frame));
    return [changed - start, performance.now() - start];
}"""
FIRST_FRAME = """async () => {
    const image = () => document.querySelector('#denoise-xt img');
    const old = image() ? image().src : null;
    const start = performance.now();
    document.querySelector('#denoise-run').click();
    await new Promise(done => { const check = () => (image() && image().src !== old) ? done() : requestAnimationFrame(check); check(); });
    return performance.now() - start;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], port: int) -> tuple[subprocess.Popen, float]:
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return process, time.perf_counter() - began
        except OSError:
            if process.poll() is not None or time.perf_counter() - began > 120:
                raise SystemExit(f"{command} did not start")
            time.sleep(0.05)


VALUES = [1.0, -1.0, 2.0, -2.0, 0.5]  # consecutive moves never repeat a value, so each one redraws


def slider_moves(page, moves: int, slider: str, first: int = 0) -> list[list[float]]:
    """`moves` slider inputs on an open page, from VALUES[first] on -> [ms to new src, ms to painted] each."""
    times = []
    for i in range(first, first + moves):
        times.append(page.evaluate(MOVE_SLIDER, [VALUES[i % len(VALUES)], slider]))
        page.wait_for_timeout(150)  # a pause between moves, as between drags
    return times


def open_edit_tab(page, url: str, model: str) -> None:
    """Sample with `model`, pick the first sample and send it to the Edit tab, as a person would."""
    page.goto(url)
    page.locator("#sample-gallery").wait_for()
    page.get_by_label("model").first.click()
    page.get_by_role("option", name=model, exact=True).click()
    page.click("#sample-run")
    page.locator("#sample-gallery .gallery-item").first.click()
    page.wait_for_function("document.querySelector('#sample-picked').innerText.includes('Picked')")
    page.click("#sample-to-edit")
    page.wait_for_selector("#edit-image img")
    page.wait_for_function("document.querySelector('#edit-readout').innerText.includes('Reads as')")


def encode_times(page, url: str) -> list[tuple[str, float]]:
    """Upload a drawn digit, press Encode, and time until the reconstruction and its error are shown."""
    from PIL import Image, ImageDraw

    picture = Path(tempfile.mkdtemp()) / "four.png"
    image = Image.new("RGB", (300, 360), "white")  # dark ink on paper, as a scan or photo would be
    ImageDraw.Draw(image).line([(180, 40), (60, 230), (230, 230)], fill="black", width=22)
    ImageDraw.Draw(image).line([(180, 40), (180, 330)], fill="black", width=22)
    image.save(picture)
    rows = []
    for name in ("vae-mnist", "flow-mnist", "dcgan-mnist", "ddpm-mnist"):
        page.goto(url)
        page.get_by_role("tab", name="Edit").click()
        page.get_by_label("encode with").click()
        page.get_by_role("option", name=name, exact=True).click()
        page.locator("#edit-upload input[type=file]").set_input_files(str(picture))
        page.locator("#edit-upload").get_by_text("four.png").wait_for()
        began = time.perf_counter()
        page.click("#edit-encode-upload")
        page.wait_for_function(f"document.querySelector('#edit-encoded').innerText.includes('{name}')", timeout=120_000)
        rows.append((name, time.perf_counter() - began))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=6, help="rounds in which every page takes its turn")
    parser.add_argument("--moves", type=int, default=5, help="slider moves per page per turn")
    parser.add_argument("--edit-only", action="store_true", help="time the sliders only")
    parser.add_argument("--models", nargs="*", default=["vae-mnist", "dcgan-mnist", "wgan-gp-mnist", "flow-mnist"])
    args = parser.parse_args()
    app_port, bare_port = free_port(), free_port()
    app, cold_start = start([sys.executable, "app.py", "--port", str(app_port), "--device", "cpu"], app_port)
    bare, _ = start([sys.executable, "-c", BARE_PAGE, str(bare_port)], bare_port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            # One tab per page, all open at once, measured in turns (a few moves each, round after round), so
            # the machine's drift during the run falls on every page alike.
            pages = {}
            bare_page = pages["bare Gradio page (reference)"] = browser.new_page(viewport={"width": 1280, "height": 1000})
            bare_page.goto(f"http://127.0.0.1:{bare_port}/")
            bare_page.wait_for_selector("#edit-image img")
            for name in args.models:
                pages[f"app, Edit tab, thickness slider, {name}"] = browser.new_page(viewport={"width": 1280, "height": 1000})
                open_edit_tab(pages[f"app, Edit tab, thickness slider, {name}"], f"http://127.0.0.1:{app_port}/", name)
            times = {what: [] for what in pages}
            for turn in range(args.turns + 1):  # turn 0 warms up: the first moves load each model's directions
                for what, tab in pages.items():
                    tab.bring_to_front()
                    moves = slider_moves(tab, args.moves, "#edit-slider-0" if tab is bare_page else "#edit-slot-0",
                                         first=turn * args.moves)
                    if turn:
                        times[what] += moves
            bare_src, bare_shown = (statistics.median(t[k] for t in times["bare Gradio page (reference)"]) for k in (0, 1))
            rows = [(what, statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)) for what, ts in times.items()]
            page = bare_page
            if not args.edit_only:
                encode_rows = encode_times(page, f"http://127.0.0.1:{app_port}/")
                page.goto(f"http://127.0.0.1:{app_port}/")
                page.get_by_role("tab", name="Denoise").click()
                page.locator("#denoise-run").wait_for()
                page.evaluate(FIRST_FRAME)  # warm-up: loads the diffusion model
                page.wait_for_function("document.querySelector('#denoise-equation').innerText.includes('step 50 of 50')", timeout=300_000)
                first_frames = []
                for _ in range(3):
                    # the last step's text comes one update before the stored frames: a click while the run is
                    # still delivering them is dropped (a click does not queue behind its own running event)
                    page.wait_for_timeout(1500)
                    first_frames.append(page.evaluate(FIRST_FRAME))
                    page.wait_for_function("document.querySelector('#denoise-equation').innerText.includes('step 50 of 50')", timeout=300_000)
            browser.close()
    finally:
        for process in (app, bare):
            process.terminate()
    count = args.turns * args.moves
    print(f"| what | new image shown, median ms ({count} moves) | x bare page | img src changed, median ms | x bare page |")
    print("|---|---|---|---|---|")
    for what, src_ms, shown_ms in rows:
        print(f"| {what} | {shown_ms:.0f} | {shown_ms / bare_shown:.2f} | {src_ms:.0f} | {src_ms / bare_src:.2f} |")
    if args.edit_only:
        return
    print(f"\nDenoise, Run to first streamed frame (DDIM, 50 steps): median {statistics.median(first_frames):.0f} ms of {len(first_frames)}")
    print(f"Cold start, `python app.py` until the page answers: {cold_start:.1f} s")
    print("\n| encode an uploaded digit with | Encode pressed to reconstruction shown, s |\n|---|---|")
    for name, seconds in encode_rows:
        print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
