"""Soak: `python benchmarks/soak.py [--minutes 30] [--users 16] [--out runs/soak/]`.

Starts the app with a temp folder of its own (TMPDIR points at a new, empty folder made for this run; the app
makes its Gradio cache and its export folder inside it, as it does when deployed, so every file the server
writes, through Gradio's cache or Python's tempfile, is counted)
and lets `--users` simulated users (one thread and one HTTP connection each, on Gradio's REST API, see
_server.ApiClient; one session each, as a browser tab has, unless --session-per-call) use it back to back,
without pauses, for `--minutes`. Each user loops over what a person does in the app: sample a grid (/sample)
and look at it, edit by named attributes (/edit_attributes) and by principal directions (/edit),
interpolate, denoise (/denoise, DDIM, 10 steps) and encode an uploaded image (all upload the same drawn
digit, as a class working from one example would). Returned images are fetched as a browser showing them
would. The endpoints for interpolating and encoding are looked up in the app's public API (what view_api
lists) and called with arguments read from their signatures; one that is missing is said so in the output,
and interpolation then falls back to decoding frames along a slerp path with /decode.

Every 30 s (--every) it records the server's resident memory (the process and its children, VmRSS), the calls and
errors so far, and the files and bytes under the temp folder; the series goes to a CSV under --out. The
targets: no errors; resident memory at the end within 10% of what it was after the first 5 minutes (or the
first sixth of a shorter run: by then every model the users touch is loaded); and, once the server has been
stopped as a person stops it (Ctrl-C), nothing left in its temp folder. Files left while it still runs are
reported beside it (the app deletes its cached files after a while, so some are expected)."""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gradio_client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import ROOT, ApiClient, latent_sizes, percentile, start_app  # noqa: E402

SAMPLE_MODELS = ("vae-mnist", "dcgan-mnist", "flow-mnist")
EDIT_MODELS = ("vae-mnist", "dcgan-mnist")
ATTRIBUTES = ("thickness", "slant", "width", "height")
INTERPOLATION_FRAMES = 8
DENOISE = ("ddpm-mnist", "ddim", 10, 0.0)  # model, sampler, steps, eta: a short run, as a curious student starts


@dataclass
class Tally:
    """Every call of every user: (endpoint, ms, error text or None); appended from many threads (atomic)."""
    calls: list = field(default_factory=list)

    def timed(self, endpoint: str, action):
        began = time.perf_counter()
        try:
            result = action()
            error = None
        except Exception as exc:  # noqa: BLE001 - every failure is counted and its text kept
            result, error = None, f"{type(exc).__name__}: {exc}"
        self.calls.append((endpoint, (time.perf_counter() - began) * 1000, error))
        return result

    def errors(self) -> int:
        return sum(error is not None for _, _, error in self.calls)


def find_endpoint(endpoints: dict, *words: str) -> str | None:
    """The first public api_name containing one of `words`."""
    return next((name for name in endpoints if any(word in name.lower() for word in words)), None)


def generic_arguments(parameters: list[dict], client: ApiClient, rng: random.Random, picture: Path,
                      model: str) -> list:
    """Arguments for an endpoint known only from view_api (so a changed signature still gets sensible ones):
    an upload for a file or image input; `model` for an input named like a model, or offering it among its
    choices; the default where there is one; else the first choice, or a seed-like number."""
    values = []
    for parameter in parameters:
        kind, choices = parameter.get("type", {}).get("type"), parameter.get("type", {}).get("enum")
        if parameter.get("component") in ("File", "Image", "UploadButton"):
            values.append(client.upload(picture))
        elif (choices and model in choices) or (not choices and "model" in parameter.get("parameter_name", "")):
            values.append(model)
        elif parameter.get("parameter_has_default"):
            values.append(parameter["parameter_default"])
        elif choices:
            values.append(choices[0])
        else:
            values.append(rng.randrange(1000) if kind in ("integer", "number") else "")
    return values


def slerp(a: list[float], b: list[float], t: float) -> list[float]:
    """Spherical interpolation between two latents (the Interpolate tab's default path)."""
    dot = sum(x * y for x, y in zip(a, b)) / (math.hypot(*a) * math.hypot(*b))
    angle = math.acos(max(-1.0, min(1.0, dot)))
    if angle < 1e-6:
        return [x + t * (y - x) for x, y in zip(a, b)]
    wa, wb = math.sin((1 - t) * angle) / math.sin(angle), math.sin(t * angle) / math.sin(angle)
    return [wa * x + wb * y for x, y in zip(a, b)]


def first_file(value) -> dict | None:
    """The first returned file (a dict with a url) anywhere in an endpoint's outputs."""
    if isinstance(value, dict):
        if value.get("url") and value.get("meta", {}).get("_type") == "gradio.FileData" and not value["url"].startswith("data:"):
            return value
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            found = first_file(item)
            if found:
                return found
    return None


def user_loop(url: str, number: int, deadline: float, tally: Tally, api: dict, sizes: dict, picture: Path,
              session_per_call: bool) -> None:
    """One user: the loop of actions until `deadline`, each call timed; a returned image is fetched too."""
    rng = random.Random(f"soak/{number}")
    client = ApiClient(url, session_per_call=session_per_call)

    def call_and_look(endpoint: str, *args, label: str | None = None):
        label = label or endpoint
        result = tally.timed(label, lambda: client.call(endpoint, *args))
        shown = first_file(result)
        if shown:
            tally.timed(f"{label} (fetch image)", lambda: client.fetch(shown))

    turn = 0
    while time.perf_counter() < deadline:
        model = EDIT_MODELS[turn % 2]
        seed, index = rng.randrange(10_000), rng.randrange(16)
        call_and_look("/sample", SAMPLE_MODELS[turn % 3], seed, 1.0, 16, "any")
        moved = rng.sample(ATTRIBUTES, rng.randint(1, 2))
        for _ in range(3):  # a few slider moves on one picked sample
            call_and_look("/edit_attributes", model, seed, index, {n: round(rng.uniform(-2, 2), 1) for n in moved},
                          [n for n in ATTRIBUTES if n not in moved][:1])
        call_and_look("/edit", model, seed, index, [round(rng.uniform(-2, 2), 1) for _ in range(3)])
        if api["interpolate"]:
            call_and_look(api["interpolate"], *generic_arguments(api["parameters"][api["interpolate"]], client, rng,
                                                                 picture, model))
        else:
            a, b = ([rng.gauss(0, 1) for _ in range(sizes[model])] for _ in range(2))
            for i in range(INTERPOLATION_FRAMES):
                call_and_look("/decode", model, slerp(a, b, i / (INTERPOLATION_FRAMES - 1)),
                              label="/decode (interpolation frames)")
        call_and_look("/denoise", DENOISE[0], rng.randrange(10_000), *DENOISE[1:])
        if api["encode"]:  # with the VAE: GAN inversion takes 10-20 s, and would be most of the run
            call_and_look(api["encode"], *generic_arguments(api["parameters"][api["encode"]], client, rng, picture,
                                                            "vae-mnist"))
        turn += 1
    client.close()


def span(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:.0f} s"


def folder_size(folder: Path) -> tuple[int, int]:
    """(files, bytes) under `folder`, counted while the server may be writing and deleting in it (os.walk skips
    a folder removed while it walks; Path.rglob raised, and ended an earlier 30-minute run at 19 minutes)."""
    files = size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                size += os.stat(os.path.join(root, name)).st_size
                files += 1
            except OSError:  # deleted while we looked
                continue
    return files, size


def draw_digit(path: Path) -> Path:
    """A drawn 4 on white paper, as a scan or photo of a digit would be (the same as edit_latency.py's)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (300, 360), "white")
    ImageDraw.Draw(image).line([(180, 40), (60, 230), (230, 230)], fill="black", width=22)
    ImageDraw.Draw(image).line([(180, 40), (180, 330)], fill="black", width=22)
    image.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--every", type=float, default=30, help="seconds between memory and temp-folder readings")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "soak")
    parser.add_argument("--app-args", default="", help='flags for the app, e.g. "--threads 1"')
    parser.add_argument("--session-per-call", action="store_true",
                        help="send no session hash, as curl does (see _server.ApiClient); default: one per user")
    args = parser.parse_args()
    duration = args.minutes * 60
    settled_at = min(300.0, duration / 6)  # "after the first 5 minutes", a sixth of a shorter run
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix="soak-server-tmp-"))
    picture = draw_digit(args.out / f"{stamp}-digit.png")
    sizes = latent_sizes(EDIT_MODELS)
    # TMPDIR only: the app makes its own Gradio cache and export folders inside it, as it does when deployed
    server = start_app(env={"TMPDIR": str(temp)}, log=args.out / f"{stamp}-server.log", extra=args.app_args.split())
    tally, rows, notes = Tally(), [], []
    began = time.perf_counter()

    def reading(label: str, running: bool = True) -> dict:
        files, size = folder_size(temp)
        row = {"elapsed_s": round(time.perf_counter() - began, 1),
               "rss_mb": round(server.rss_bytes() / 2**20, 1) if running else "",
               "temp_files": files, "temp_bytes": size, "calls": len(tally.calls), "errors": tally.errors(),
               "label": label}
        rows.append(row)
        print(f"{row['elapsed_s']:7.0f} s  RSS {row['rss_mb']:>7} MB  temp {files} files {size / 2**20:.1f} MB  "
              f"calls {row['calls']}  errors {row['errors']}  {label}", file=sys.stderr, flush=True)
        return row

    try:
        looker = Client(server.url, verbose=False, download_files=False, analytics_enabled=False)
        info = looker.view_api(return_format="dict", print_info=False)["named_endpoints"]
        looker.close()  # its heartbeat stream, left open, would hold the server's shutdown
        api = {"interpolate": find_endpoint(info, "interp"), "encode": find_endpoint(info, "encode", "upload"),
               "parameters": {name: found["parameters"] for name, found in info.items()}}
        notes.append(f"public endpoints (view_api): {', '.join(info)}; interpolating with {api['interpolate']}, "
                     f"encoding an upload with {api['encode']}")
        if not api["interpolate"]:
            notes.append(f"MISSING: no public interpolation endpoint; interpolation was done as "
                         f"{INTERPOLATION_FRAMES} /decode calls along a slerp path (the Interpolate tab's button is "
                         "not in the public API, and its GIF and PNG exports were not exercised)")
        if not api["encode"]:
            notes.append("MISSING: no public endpoint encodes an uploaded image (the Edit tab's 'Encode the upload' "
                         "is not in the public API); uploads and encoding were NOT soaked")
        for note in notes:
            print(note, file=sys.stderr, flush=True)

        start_row = reading("start, before any call")
        deadline = began + duration
        users = [threading.Thread(target=user_loop, daemon=True, args=(server.url, n, deadline, tally, api, sizes,
                                                                        picture, args.session_per_call))
                 for n in range(args.users)]
        for user in users:
            user.start()
        settled, next_at = None, args.every
        while any(user.is_alive() for user in users):
            now = time.perf_counter() - began
            if settled is None and now >= settled_at:
                settled = reading(f"settled ({span(settled_at)})")
            elif now >= next_at:
                reading("")
                next_at += args.every
            time.sleep(0.2)
        settled = settled or reading("settled (the run ended first)")
        end = reading("end, all users done, server still running")
    finally:
        exit_status = server.stop()
    after_exit = reading(f"after the server exited (status {exit_status})", running=False)
    csv_path = args.out / f"{stamp}-memory.csv"
    with open(csv_path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    ratio = end["rss_mb"] / settled["rss_mb"]
    checks = [("errors", f"{tally.errors()} of {len(tally.calls)} calls", "0", tally.errors() == 0),
              (f"RSS at the end / after {span(settled_at)}", f"{end['rss_mb']:.0f} / {settled['rss_mb']:.0f} MB "
               f"= {ratio:.3f}", "<= 1.10", ratio <= 1.10),
              ("temp folder after the server exited", f"{after_exit['temp_files']} files, "
               f"{after_exit['temp_bytes'] / 2**20:.1f} MB", "0 files", after_exit["temp_files"] == 0)]
    sessions = "a new session per call" if args.session_per_call else "one session per user"
    print(f"\nSoak: {args.users} users ({sessions}) for {args.minutes:g} min against {server.url}; "
          f"RSS at start {start_row['rss_mb']:.0f} MB; temp folder {temp}\n")
    print("| target | measured | wanted | result |\n|---|---|---|---|")
    for what, measured, wanted, ok in checks:
        print(f"| {what} | {measured} | {wanted} | {'PASS' if ok else 'FAIL'} |")
    print(f"| temp folder at the end, server still running | {end['temp_files']} files, "
          f"{end['temp_bytes'] / 2**20:.1f} MB | (reported) | - |")
    print("\n| endpoint | calls | errors | p50 ms | p95 ms |\n|---|---|---|---|---|")
    endpoints = sorted({endpoint for endpoint, _, _ in tally.calls})
    for endpoint in endpoints:
        mine = [(ms, error) for name, ms, error in tally.calls if name == endpoint]
        ok = [ms for ms, error in mine if error is None]
        print(f"| {endpoint} | {len(mine)} | {len(mine) - len(ok)} | {percentile(ok, 50):.0f} | "
              f"{percentile(ok, 95):.0f} |")
    for endpoint in endpoints:
        first = next((error for name, _, error in tally.calls if name == endpoint and error), None)
        if first:
            print(f"\n{endpoint}, first error: {first[:500]}")
    print("\n" + "\n".join(notes))
    print(f"\nMemory and temp-folder series: {csv_path}; server log: {server.log}")
    if after_exit["temp_files"] == 0:  # at most empty folders: nothing to look into
        shutil.rmtree(temp)
    print(f"Overall: {'PASS' if all(ok for *_, ok in checks) else 'FAIL'}")


if __name__ == "__main__":
    main()
