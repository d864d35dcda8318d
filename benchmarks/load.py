"""Load on the JSON API: `python benchmarks/load.py [--users 1,8,16,32] [--seconds 20] [--url URL]`.

For each level of concurrent simulated users (one thread and one HTTP connection per user, as separate
browsers or scripts would be, calling Gradio's REST API with one session each: see _server.ApiClient, and
there why not gradio_client, which `--client gradio_client` uses instead; `--session-per-call` calls as curl
does), every user sends requests back to back for the level's duration: named attribute edits
(/edit_attributes, one or two of thickness, slant, width, height by a seeded random amount, sometimes with
another attribute locked) on vae-mnist and dcgan-mnist, principal-direction edits (/edit) and /decode of
fresh random latents, in a fixed cycle. It prints, per level and endpoint, the median and 95th
percentile latency of the successful calls, completed calls per second, and the errors.

In the same run a bare Gradio app serves the same three endpoints with the same signatures and the same
queue settings as the app (read from the app's own code), each returning a fixed 28x28 image as rows, and is
put under exactly the same load: the same users, the same seeded requests, the same client code. Its latency is
the floor this machine, this Gradio and this client put under any endpoint; the "p95 / bare p95" column
is what the app adds to it.

Fairness on a noisy machine: both servers run for the whole benchmark but only one is under load at a time
(on a 2-core machine two loaded servers would mostly measure each other). Each level's time is split into
four slices in the order app, bare, bare, app (an ABBA design), so a drift in the machine's speed during a
level falls on both alike. Both get a warm-up before any timing (the app loads each model and its edit
directions on first use), and all their clients are connected before the first level. The load generator
runs on the same machine and shares its CPUs; it does so equally for both, so the ratio stays fair, but on
few cores the absolute numbers include the clients' own time (under 1 ms of CPU per call on the REST API)."""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import random
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import (ApiClient, app_queue_settings, free_port, latent_sizes, percentile, start,  # noqa: E402
                     start_app)

MODELS = ("vae-mnist", "dcgan-mnist")
ATTRIBUTES = ("thickness", "slant", "width", "height")
ENDPOINTS = ("/edit_attributes", "/edit", "/decode")
SLICES = ("app", "bare", "bare", "app")  # ABBA, see the docstring
BARE_APP = textwrap.dedent("""
    import json, sys
    import gradio as gr

    IMAGE = [[(x * 9 + y * 5) % 256 for x in range(28)] for y in range(28)]  # 28x28 rows, as the app returns

    def decode(model: str, latent: list[float]) -> list[list[int]]:
        return IMAGE

    def edit_sample(model: str, seed: int, index: int, amounts: list[float], temperature: float = 1.0,
                    count: int = 32) -> list[list[int]]:
        return IMAGE

    def edit_attributes(model: str, seed: int, index: int, amounts: dict, lock: list, temperature: float = 1.0,
                        count: int = 32) -> list[list[int]]:
        return IMAGE

    with gr.Blocks() as demo:
        gr.api(decode, api_name="decode")
        gr.api(edit_sample, api_name="edit")
        gr.api(edit_attributes, api_name="edit_attributes")
    demo.queue(**json.loads(sys.argv[2])).launch(server_port=int(sys.argv[1]))
""")


class GradioClientUser:
    """A user on gradio_client instead of the REST API (--client gradio_client), to see what that client costs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = Client(url, verbose=False, download_files=False, analytics_enabled=False)

    def call(self, api_name: str, *args):
        return self.client.predict(*args, api_name=api_name)

    def close(self) -> None:
        self.client.close()  # its heartbeat stream, left open, would hold the server's shutdown


def requests(rng: random.Random, sizes: dict[str, int]):
    """An endless, seeded cycle of (api_name, args): two attribute edits, one principal-direction edit and one
    decode per four calls, the model alternating so each endpoint sees both models equally."""
    for i in itertools.count():
        model = MODELS[(i + i // 4) % 2]
        seed, index = rng.randrange(1000), rng.randrange(32)
        kind = i % 4
        if kind < 2:
            moved = rng.sample(ATTRIBUTES, rng.randint(1, 2))
            amounts = {name: round(rng.uniform(-2, 2), 1) for name in moved}
            still = [name for name in ATTRIBUTES if name not in moved]
            lock = [rng.choice(still)] if rng.random() < 0.5 else []
            yield "/edit_attributes", (model, seed, index, amounts, lock)
        elif kind == 2:
            yield "/edit", (model, seed, index, [round(rng.uniform(-2, 2), 1) for _ in range(3)])
        else:
            yield "/decode", (model, [rng.gauss(0, 1) for _ in range(sizes[model])])


def run_slice(clients: list, seconds: float, seed: str, sizes: dict[str, int]) -> tuple[list, float]:
    """Every client sends its own seeded requests back to back for `seconds`; a call in flight at the end is
    finished and counted. -> ([(api_name, ms, error or None)], seconds from start until the last call ended)."""
    results: list[tuple[str, float, str | None]] = []
    start_at = time.perf_counter() + 0.2  # every thread is running before the clock starts
    deadline = start_at + seconds

    def user(client, number: int) -> None:
        mine = requests(random.Random(f"{seed}/{number}"), sizes)
        time.sleep(max(0.0, start_at - time.perf_counter()))
        while time.perf_counter() < deadline:
            api_name, args = next(mine)
            began = time.perf_counter()
            try:
                client.call(api_name, *args)
                error = None
            except Exception as exc:  # noqa: BLE001 - every failure is counted and its text kept
                error = f"{type(exc).__name__}: {exc}"
            results.append((api_name, (time.perf_counter() - began) * 1000, error))  # list.append is atomic

    threads = [threading.Thread(target=user, args=(c, n), daemon=True) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - start_at


def warm_up(client, sizes: dict[str, int]) -> None:
    """Every endpoint with every model once, untimed: the app loads models and directions on first use."""
    for model in MODELS:
        for api_name, args in (("/edit_attributes", (model, 0, 0, {"thickness": 1.0}, ["slant"])),
                               ("/edit", (model, 0, 0, [1.0])), ("/decode", (model, [0.0] * sizes[model]))):
            try:
                client.call(api_name, *args)
            except Exception as exc:  # noqa: BLE001 - the timed calls count it; say it now, once
                print(f"warm-up: {api_name} on {model} at {client.url} failed: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)


def summarise(results: list, seconds: float) -> dict[str, dict]:
    rows = {}
    for endpoint in (*ENDPOINTS, "all"):
        mine = [r for r in results if endpoint in ("all", r[0])]
        ok = [ms for _, ms, error in mine if error is None]
        rows[endpoint] = {"p50": percentile(ok, 50), "p95": percentile(ok, 95), "rate": len(ok) / seconds,
                          "errors": sum(error is not None for _, _, error in mine), "calls": len(mine),
                          "first_error": next((error for _, _, error in mine if error), None)}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="1,8,16,32", help="comma-separated levels of concurrent users")
    parser.add_argument("--seconds", type=float, default=20, help="load time per level, for each of app and bare")
    parser.add_argument("--url", help="an app already running (default: start one here)")
    parser.add_argument("--app-args", default="", help='flags for the app started here, e.g. "--threads 1"')
    parser.add_argument("--client", choices=("rest", "gradio_client"), default="rest", help="how users call")
    parser.add_argument("--session-per-call", action="store_true",
                        help="REST calls without a session hash, as curl sends them (see _server.ApiClient)")
    args = parser.parse_args()
    levels = [int(n) for n in args.users.split(",")]
    sizes = latent_sizes(MODELS)
    queue = app_queue_settings()
    logs = Path(tempfile.mkdtemp(prefix="load-"))
    servers, clients = [], {}
    try:
        if args.url:
            app_url = args.url
        else:
            servers.append(start_app(env={}, log=logs / "app.log", extra=args.app_args.split()))
            app_url = servers[-1].url
        bare_port = free_port()
        # the framework set up as the app sets it up: the same queue, and Gradio's queue summary as seldom
        from explorer.ui.server import ANALYTICS_EVERY

        servers.append(start([sys.executable, "-c", BARE_APP, str(bare_port), json.dumps(queue)], bare_port,
                             env={"GRADIO_ANALYTICS_CACHE_FREQUENCY": str(ANALYTICS_EVERY)}, log=logs / "bare.log"))
        urls = {"app": app_url, "bare": servers[-1].url}
        make = (functools.partial(ApiClient, session_per_call=args.session_per_call) if args.client == "rest"
                else GradioClientUser)
        with ThreadPoolExecutor(4) as pool:  # gradio_client fetches each app's config to connect: a few at once
            clients = {target: list(pool.map(lambda _, u=url: make(u), range(max(levels))))
                       for target, url in urls.items()}
        for target in urls:
            warm_up(clients[target][0], sizes)
        table = {}
        for users in levels:
            gathered = {"app": ([], 0.0), "bare": ([], 0.0)}
            for number, target in enumerate(SLICES):
                # the same seed for app and bare in the same position of the ABBA order: identical requests
                results, seconds = run_slice(clients[target][:users], args.seconds / 2, f"{users}/{number % 2}", sizes)
                gathered[target] = (gathered[target][0] + results, gathered[target][1] + seconds)
            table[users] = {target: summarise(*gathered[target]) for target in gathered}
            app_all, bare_all = table[users]["app"]["all"], table[users]["bare"]["all"]
            print(f"{users} users: app {app_all['calls']} calls, bare {bare_all['calls']} calls", file=sys.stderr,
                  flush=True)
    finally:
        for client in itertools.chain(*clients.values()):
            client.close()
        for server in servers:
            server.stop()

    sessions = ("" if args.client != "rest" else " (a session per call)" if args.session_per_call
                else " (a session per user)")
    print(f"\nLoad: {args.seconds:g} s per level for each of app ({app_url}) and bare Gradio (same queue settings: "
          f"{queue}), slices app-bare-bare-app; {args.client} clients{sessions}; {os.cpu_count()} CPUs; latencies of "
          "successful calls, ms.\n")
    print("| users | endpoint | p50 | p95 | p95 / bare p95 | calls/s | errors |")
    print("|---|---|---|---|---|---|---|")
    for users, targets in table.items():
        for target in ("app", "bare"):
            for endpoint, row in targets[target].items():
                bare_p95 = targets["bare"][endpoint]["p95"]
                ratio = f"{row['p95'] / bare_p95:.2f}" if target == "app" and bare_p95 > 0 else "-"
                name = endpoint if target == "app" else f"bare {endpoint}"
                print(f"| {users} | {name} | {row['p50']:.0f} | {row['p95']:.0f} | {ratio} | {row['rate']:.1f} | "
                      f"{row['errors']} |")
    failures = [(users, target, endpoint, row) for users, targets in table.items() for target in targets
                for endpoint, row in targets[target].items() if endpoint != "all" and row["errors"]]
    for users, target, endpoint, row in failures:
        print(f"\n{target} {endpoint} at {users} users: {row['errors']} errors; the first: {row['first_error'][:500]}")
    print(f"\nServer logs: {logs}")


if __name__ == "__main__":
    main()
