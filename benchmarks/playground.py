"""The playground's live training in a real browser: `python benchmarks/playground.py [--seconds 4]`.

Starts the app and, in the same run, a bare Gradio page whose Play streams ready-made images of the same size
as fast as Gradio delivers them (the ceiling for any page, with no training or drawing). For each family
it presses Play in headless chromium and reports, from the page's own clock (performance.now()): the time
from Play to the first new frame (target: within 1 s), the frames shown per second (target: at least 10),
and the updates per second the caption reports. Frames are counted with a MutationObserver on the plane's
image."""

from __future__ import annotations

import argparse
import sys
import textwrap

from playwright.sync_api import sync_playwright

from edit_latency import FLAGS, free_port, start

BARE_PAGE = textwrap.dedent("""
    import sys, numpy as np, gradio as gr
    def play():
        for i in range(100000):
            yield np.full((360, 360, 3), i % 255, np.uint8), f"step {i}"
    with gr.Blocks() as demo:
        button = gr.Button("Play", elem_id="play-play")
        caption = gr.Markdown(elem_id="play-caption")
        image = gr.Image(type="numpy", height=360, width=360, elem_id="play-plane")
        button.click(play, None, [image, caption], show_progress="hidden")
    demo.queue().launch(server_port=int(sys.argv[1]))
""")
WATCH = """async (seconds) => {
    const image = () => document.querySelector('#play-plane img');
    const times = [];
    let last = image() ? image().src : null;
    const observer = new MutationObserver(() => {
        const now = image() ? image().src : null;
        if (now && now !== last) { last = now; times.push(performance.now()); }
    });
    observer.observe(document.body, {subtree: true, childList: true, attributes: true});
    const start = performance.now();
    document.querySelector('#play-play').click();
    await new Promise(done => setTimeout(done, seconds * 1000));
    observer.disconnect();
    return {first: times.length ? times[0] - start : null, count: times.length,
            span: times.length > 1 ? times[times.length - 1] - times[0] : 0};
}"""


def watch(page, seconds: float) -> dict:
    result = page.evaluate(WATCH, seconds)
    rate = (result["count"] - 1) / (result["span"] / 1000) if result["count"] > 1 else 0.0
    return {"first_ms": result["first"], "frames_per_s": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    app_port, bare_port = free_port(), free_port()
    app, _ = start([sys.executable, "app.py", "--port", str(app_port), "--device", "cpu"], app_port)
    bare, _ = start([sys.executable, "-c", BARE_PAGE, str(bare_port)], bare_port)
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{bare_port}/")
            page.locator("#play-play").wait_for()
            rows.append(("bare page streaming a ready image (reference)", watch(page, args.seconds), "-"))
            for family, loss in (("GAN", "cross-entropy"), ("GAN", "Wasserstein (gradient penalty)"),
                                 ("flow", None), ("diffusion", None)):
                page.goto(f"http://127.0.0.1:{app_port}/")
                page.get_by_role("tab", name="Playground").click()
                page.locator("#play-family").get_by_text(family, exact=True).click()
                if loss:
                    page.locator("#play-loss").get_by_text(loss, exact=True).click()
                page.wait_for_function("document.querySelector('#play-caption').innerText.includes('step 0')")
                page.wait_for_timeout(500)
                figures = watch(page, args.seconds)
                caption = page.inner_text("#play-caption")
                page.click("#play-pause")
                updates = caption.split("updates/s")[0].split("·")[-1].strip()
                rows.append((f"{family}{', ' + loss if loss else ''}", figures, updates))
            browser.close()
    finally:
        for process in (app, bare):
            process.terminate()
    print(f"| playground ({args.seconds:g} s of Play) | Play to first frame, ms | frames shown per s | updates per s |")
    print("|---|---|---|---|")
    for what, figures, updates in rows:
        first = f"{figures['first_ms']:.0f}" if figures["first_ms"] is not None else "-"
        print(f"| {what} | {first} | {figures['frames_per_s']:.1f} | {updates} |")


if __name__ == "__main__":
    main()
