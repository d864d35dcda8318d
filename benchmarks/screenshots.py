"""Screenshots of every tab of the real app, for the README: `python benchmarks/screenshots.py`.
Writes docs/screenshots/<tab>.png."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edit_latency import FLAGS, ROOT, free_port, start  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    app, _ = start([sys.executable, "app.py", "--port", str(port), "--device", "cpu"], port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(300_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_label("model").first.click()
            page.get_by_role("option", name="ddpm-mnist", exact=True).click()
            page.click("#sample-run")
            page.locator("#sample-gallery .gallery-item").nth(2).click()
            page.wait_for_function("document.querySelector('#sample-picked').innerText.includes('Picked')")
            page.screenshot(path=OUT / "sample.png")
            page.get_by_label("model").first.click()
            page.get_by_role("option", name="vae-mnist", exact=True).click()
            page.click("#sample-run")
            page.locator("#sample-gallery .gallery-item").nth(2).click()
            page.wait_for_function("document.querySelector('#sample-picked').innerText.includes('vae-mnist')")
            page.click("#sample-to-edit")
            page.wait_for_selector("#edit-readout")
            page.wait_for_function("document.querySelector('#edit-readout').innerText.includes('Reads as')")
            page.locator("#edit-lock-slot-1 input[type=checkbox]").check()
            time.sleep(1)
            page.locator("#edit-slot-0 input[type=range]").fill("2")
            page.wait_for_function("[...document.querySelectorAll('#edit-readout tr')].some(r => r.innerText.includes('thickness') && r.innerText.includes('edited'))")
            time.sleep(1)
            page.screenshot(path=OUT / "edit.png", full_page=True)
            page.get_by_role("tab", name="Interpolate").click()
            page.click("#interp-use-seeds")
            page.wait_for_function("document.querySelector('#interp-a').innerText.includes('seed 1')")
            page.click("#interp-run")
            page.locator("#interp-gif a").first.wait_for()
            page.screenshot(path=OUT / "interpolate.png", full_page=True)
            page.get_by_role("tab", name="Denoise").click()
            page.locator("#denoise-run").wait_for()
            page.click("#clean-run")
            page.wait_for_function("document.querySelector('#clean-table').innerText.includes('closest rebuild')")
            page.click("#denoise-run")
            # any frame from the 20th on (a fast machine can pass the 20th between two polls)
            page.wait_for_function("(/step (\\d+) of 50/.exec(document.querySelector('#denoise-equation').innerText) || [0, 0])[1] >= 20")
            page.screenshot(path=OUT / "denoise.png", full_page=True)
            page.get_by_role("tab", name="Compare").click()
            page.click("#compare-run")
            # the table fills in as each model is drawn: wait for the last one (PixelCNN and the RBM take seconds)
            page.wait_for_function("document.querySelector('#compare-table').innerText.includes('rbm-mnist')", timeout=300_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=OUT / "compare.png", full_page=True)
            page.get_by_role("tab", name="Latent map").click()
            for side in ("left", "right"):
                page.wait_for_function(f"document.querySelector('#map-{side}-caption').innerText.includes('held-out')")
            for side, clicks in (("left", [(120, 300), (210, 200), (320, 110)]), ("right", [(120, 300), (210, 200), (320, 110)])):
                for x, y in clicks:
                    page.locator(f"#map-{side} img").click(position={"x": x, "y": y})
                    page.wait_for_selector(f"#map-{side}-decoded img")
                    time.sleep(0.5)
                page.click(f"#map-{side}-path")
                page.wait_for_selector(f"#map-{side}-strip img")
            time.sleep(1)
            page.screenshot(path=OUT / "latent-map.png", full_page=True)
            page.get_by_role("tab", name="Playground").click()  # seed 2: the cross-entropy GAN's collapse
            page.wait_for_function("document.querySelector('#play-caption').innerText.includes('step 0')")
            page.click("#play-play")
            page.wait_for_function("(/step (\\d+)/.exec(document.querySelector('#play-caption').innerText) || [0, 0])[1] >= 800")
            page.click("#play-pause")
            time.sleep(1.5)
            page.screenshot(path=OUT / "playground.png", full_page=True)
            browser.close()
    finally:
        app.terminate()
    print("\n".join(str(p.relative_to(ROOT)) for p in sorted(OUT.glob("*.png"))))


if __name__ == "__main__":
    main()
