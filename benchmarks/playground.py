"""The playground's live training in a real browser: `python benchmarks/playground.py [--seconds 4]`, and a
class pressing Play at once: `python benchmarks/playground.py --class [N] [--seconds 10]`.

Starts the app and, in the same run, a bare Gradio page whose Play streams ready-made images of the same size
as fast as Gradio delivers them (the ceiling for any page, with no training or drawing). For each family
it presses Play in headless chromium and reports, from the page's own clock (performance.now()): the time
from Play to the first new frame (target: within 1 s), the frames shown per second (target: at least 10),
and the updates per second the caption reports. Frames are counted with a MutationObserver on the plane's
image.

With --class (N browsers, default 12), one chromium opens the Playground in N contexts (N sessions, as N
people), and every page presses Play at the same moment of the machine's clock. For each it reports the
time from Play to the first new frame (target: within 5 s), the frames shown per second over the same
window of `--seconds` once every page has its first frame, and the updates per second its run made over
that window (from the steps its frames show), with the median and the worst of each; and the conditions:
the machine's load average before and after, and the cores the app and the browser used meanwhile."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import textwrap
import time

from playwright.sync_api import TimeoutError as PlaywrightTimeout
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


# Installed in every page before the common moment: record each new plane image with the absolute time
# (performance.timeOrigin + now, comparable across pages on one machine), then press Play at `at`.
ARM = """(at) => {
    const image = () => document.querySelector('#play-plane img');
    const clock = () => performance.timeOrigin + performance.now();
    window.bench = {pressed: null, frames: [], steps: []};
    let last = image() ? image().src : null;
    new MutationObserver(() => {
        const now = image() ? image().src : null;
        if (window.bench.pressed !== null && now && now !== last) {
            last = now;
            const step = document.querySelector('#play-caption').innerText.match(/step (\\d+)/);
            window.bench.frames.push(clock());
            window.bench.steps.push(step ? +step[1] : null);
        }
    }).observe(document.body, {subtree: true, childList: true, attributes: true});
    setTimeout(() => { window.bench.pressed = clock(); document.querySelector('#play-play').click(); },
               Math.max(0, at - Date.now()));
}"""


def cpu_seconds(pids) -> float:
    """User and system CPU time of these processes so far (Linux /proc; 0 where it cannot be read)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores, every process; /proc/stat)."""
    try:
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> list[int]:
    """Every process below `root` (here: the browser's, under this process's Playwright driver)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def class_of(count: int, seconds: float) -> None:
    """`count` people press Play at once on one server; print each one's first frame and frame rate."""
    port = free_port()
    load_before = os.getloadavg()
    app, _ = start([sys.executable, "app.py", "--port", str(port), "--device", "cpu"], port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            pages = []
            for _ in range(count):
                page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
                page.set_default_timeout(0)
                page.goto(f"http://127.0.0.1:{port}/")
                page.get_by_role("tab", name="Playground").click()
                page.wait_for_function("document.querySelector('#play-caption').innerText.includes('step 0')")
                pages.append(page)
            at = time.time() * 1000 + 1000 + 100 * count  # time for every page to be armed before the moment
            for page in pages:
                page.evaluate(ARM, at)
            time.sleep(max(0.0, at / 1000 - time.time()))
            browsers = [pid for pid in descendants(os.getpid()) if pid != app.pid]
            began, app_cpu, browser_cpu = time.time(), cpu_seconds([app.pid]), cpu_seconds(browsers)
            busy = machine_busy_seconds()
            deadline = time.time() + 120  # a page with no frame two minutes after Play is reported as such
            for page in pages:
                try:
                    page.wait_for_function("window.bench.frames.length > 0",
                                           timeout=max(1.0, deadline - time.time()) * 1000)
                except PlaywrightTimeout:
                    pass
            window_start = max(page.evaluate("window.bench.frames[0] || 0") for page in pages)
            time.sleep(max(0.0, window_start / 1000 + seconds - time.time()))  # the common window, measured
            spent = time.time() - began
            app_cores, browser_cores = ((cpu_seconds(pids) - before) / spent for pids, before in
                                        (([app.pid], app_cpu), (browsers, browser_cpu)))
            other_cores = (machine_busy_seconds() - busy) / spent - app_cores - browser_cores
            rows = []
            for page in pages:
                bench = page.evaluate("window.bench")
                inside = [(t, step) for t, step in zip(bench["frames"], bench["steps"])
                          if window_start <= t <= window_start + seconds * 1000 and step is not None]
                shown = [t for t in bench["frames"] if window_start <= t <= window_start + seconds * 1000]
                # the run's progress over the window, from the steps its frames showed
                span = (inside[-1][0] - inside[0][0]) / 1000 if len(inside) > 1 else 0
                updates = (inside[-1][1] - inside[0][1]) / span if span else 0.0
                first = bench["frames"][0] - bench["pressed"] if bench["frames"] else float("inf")
                rows.append((first, len(shown) / seconds, updates))
            for page in pages:
                page.click("#play-pause")
            browser.close()
    finally:
        app.terminate()
    load_after = os.getloadavg()
    print(f"| browser ({count} pressing Play at once, {seconds:g} s window) | Play to first frame, ms "
          "| frames shown per s | updates per s |")
    print("|---|---|---|---|")
    for i, (first, rate, updates) in enumerate(rows, 1):
        print(f"| {i} | {'none in 120 s' if first == float('inf') else f'{first:.0f}'} | {rate:.1f} | {updates:.0f} |")
    firsts, rates, updates = zip(*rows)
    median = statistics.median
    print(f"| median | {median(firsts):.0f} | {median(rates):.1f} | {median(updates):.0f} |")
    print(f"| worst | {max(firsts):.0f} | {min(rates):.1f} | {min(updates):.0f} |")
    print(f"\nfirst frame within 5 s: {sum(f <= 5000 for f in firsts)} of {count}; load average (1, 5, 15 min) "
          f"before {' '.join(f'{x:.1f}' for x in load_before)}, after {' '.join(f'{x:.1f}' for x in load_after)} "
          f"on {os.cpu_count()} cores; from Play to the window's end the app used {app_cores:.2f} cores, the "
          f"browser {browser_cores:.2f} and everything else on the machine {other_cores:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=None, help="of Play measured (default 4; 10 with --class)")
    parser.add_argument("--class", dest="browsers", type=int, nargs="?", const=12, default=None,
                        help="N browsers pressing Play at once (default 12)")
    args = parser.parse_args()
    if args.browsers is not None:
        if args.browsers < 1:
            parser.error("--class takes at least 1 browser")
        class_of(args.browsers, 10.0 if args.seconds is None else args.seconds)
        return
    args.seconds = 4.0 if args.seconds is None else args.seconds
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
