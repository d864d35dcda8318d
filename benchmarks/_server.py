"""What the HTTP benchmarks share: start a server on a free port in a subprocess (the app, or a bare Gradio
script), wait until it answers, read its resident memory, stop it the way a person does (Ctrl-C), read the
queue settings the app launches with (so a bare reference app can be given the same ones), and a minimal
client of Gradio's REST API.

Why not gradio_client for load: gradio_client 2.7 waits for results by polling (50 ms sleeps, and a 1 ms spin
in its job iterator) and spends about 40 ms of CPU per call. Against a bare Gradio app on a 2-core machine,
8 users with gradio_client made 24 calls/s while the server used 11% of one core; the same 8 users on the
REST API below made 200 calls/s with the server busy. With gradio_client a load test measures its client."""

from __future__ import annotations

import ast
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# No request of a benchmark may wait on the network: the servers are local, and analytics would phone home.
QUIET_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    started_s: float  # from Popen until the page first answered
    log: Path | None

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def stop(self) -> int | None:
        return stop(self.process)


def start(command: list[str], port: int, env: dict[str, str] | None = None, log: Path | None = None,
          timeout_s: float = 180) -> Server:
    """Run `command` (which must serve on `port`) from the repository root with `env` added to this process's
    environment, and return once GET / answers. Its output goes to `log`, or nowhere: a full pipe nobody reads
    would stall the server mid-run."""
    began = time.perf_counter()
    out = open(log, "wb") if log else subprocess.DEVNULL
    # Ctrl-C restored in the child: a benchmark started in the background (`&` in a script) has SIGINT ignored,
    # and the server would inherit that, so stop() could only end it with SIGTERM, skipping its cleanup
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **QUIET_ENV, **(env or {})},
                               stdout=out, stderr=subprocess.STDOUT,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    if log:
        out.close()  # the child has its own copy
    url = f"http://127.0.0.1:{port}/"
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return Server(process, url, time.perf_counter() - began, log)
        except OSError:
            if process.poll() is not None or time.perf_counter() - began > timeout_s:
                stop(process)
                tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else "(no log kept)"
                raise SystemExit(f"{' '.join(command)} did not start on port {port}:\n{tail}")
            time.sleep(0.1)


def start_app(port: int | None = None, env: dict[str, str] | None = None, log: Path | None = None,
              extra: list[str] = ()) -> Server:
    """The app, as `python app.py --device cpu [extra flags]` (e.g. ["--threads", "1"])."""
    port = port or free_port()
    return start([sys.executable, "app.py", "--port", str(port), "--device", "cpu", *extra], port, env, log)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation between calls); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latent_sizes(names) -> dict[str, int]:
    """Each model's latent size (numbers in a flat latent), from the checkpoints this repository ships, which
    are the ones the app serves."""
    sys.path.insert(0, str(ROOT))
    from explorer import load_model

    return {name: math.prod(load_model(name, device="cpu").latent_shape) for name in names}


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc/*/stat (field 4 is the parent's pid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # the command name (field 2) is in parentheses and may itself hold spaces or ')'
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and all its descendants: the sum of VmRSS in /proc/PID/status (kB). Pages
    shared between them count once per process, as `ps` and `top` count them."""
    total = 0
    for each in descendants(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def stop(process: subprocess.Popen, grace_s: float = 15) -> int | None:
    """Ctrl-C first (Gradio closes its server and runs its exit handlers on KeyboardInterrupt), then SIGTERM,
    then SIGKILL; children it leaves behind get the same. Returns the exit status."""
    family = descendants(process.pid) if process.poll() is None else [process.pid]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        process.send_signal(sig)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    for pid in family[1:]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return process.returncode


class ApiError(Exception):
    """The server answered an API call with an error event (its message, as the user would see it)."""


class ApiClient:
    """One simulated user of Gradio's REST API (POST /gradio_api/call/NAME, then read the result's event stream):
    a connection of its own, as a separate browser or script has. The calls go through the same queue as the
    page's events and gradio_client's.

    By default every call carries this user's one session hash, as a browser tab's events and a
    gradio_client.Client's calls do. With `session_per_call` it sends none, as curl does: then Gradio makes
    a new session for every call, and keeps up to 10,000 of them (Blocks.state_session_capacity), each with
    its own copy of every component's configuration. Measured on this app: about 440 KB of resident memory
    and 23 ms per /decode call made that way, against 1 KB and 6 ms with one session per user."""

    def __init__(self, url: str, timeout_s: float = 600, session_per_call: bool = False) -> None:
        self.url = url.rstrip("/") + "/"
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s)
        self.session = {} if session_per_call else {"session_hash": secrets.token_hex(6)}
        # what view_api shows: the REST API wants every input, so trailing ones left out get their defaults
        info = self.http.get("gradio_api/info")
        info.raise_for_status()
        self.endpoints = info.json()["named_endpoints"]

    def call(self, api_name: str, *args):
        """-> the endpoint's outputs (a list for several, the value itself for one), as the last event gave them;
        raises ApiError with the server's message on an error event."""
        name = api_name.strip("/")
        data = list(args)
        for parameter in self.endpoints.get(f"/{name}", {}).get("parameters", [])[len(data):]:
            if not parameter.get("parameter_has_default"):
                break  # the server will say which input is missing
            data.append(parameter["parameter_default"])
        answer = self.http.post(f"gradio_api/call/{name}", json={"data": data, **self.session})
        answer.raise_for_status()
        stream = self.http.get(f"gradio_api/call/{name}/{answer.json()['event_id']}")
        stream.raise_for_status()
        event, data = None, None
        for line in stream.text.splitlines():  # server-sent events: "event: KIND" then "data: JSON"
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event != "heartbeat":
                data = line[5:].strip()
                if event == "error":
                    raise ApiError(_error_text(data))
        if data is None:
            raise ApiError(f"no result in the event stream (last event: {event})")
        outputs = json.loads(data)
        return outputs[0] if isinstance(outputs, list) and len(outputs) == 1 else outputs

    def upload(self, path: Path) -> dict:
        """Upload a file as the page does; -> the file argument an endpoint takes."""
        with open(path, "rb") as file:
            answer = self.http.post("gradio_api/upload", files=[("files", (path.name, file))])
        answer.raise_for_status()
        return {"path": answer.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def fetch(self, file: dict) -> int:
        """GET a returned file as a browser showing it would; -> its size in bytes."""
        answer = self.http.get(file["url"])
        answer.raise_for_status()
        return len(answer.content)

    def close(self) -> None:
        self.http.close()


def _error_text(data: str) -> str:
    try:
        found = json.loads(data)
    except ValueError:
        return data
    if isinstance(found, dict) and found.get("error"):
        return str(found["error"])
    return f"error event with data {data!r:.200} (the server hides its messages unless launched with show_error)"


def app_queue_settings() -> dict:
    """The keyword arguments the app passes to Blocks.queue with its default flags, so a bare reference app can
    be given the same ones. From explorer/ui/server.py's configure_queue where it exists (called on a stand-in
    that records them), else from the literal arguments of the `.queue(...)` call in app.py's source."""
    sys.path.insert(0, str(ROOT))
    try:
        from explorer.ui.server import configure_queue, parse_args
    except ImportError:
        return _queue_call_in_app_py()

    class Recorder:
        def queue(self, **settings):
            self.settings = settings
            return self

    return configure_queue(Recorder(), parse_args([])).settings


def _queue_call_in_app_py() -> dict:
    tree = ast.parse((ROOT / "app.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "queue":
            settings = {}
            for keyword in node.keywords:
                try:
                    settings[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:
                    print(f"note: app.py's queue({keyword.arg}=...) is not a literal; the bare app leaves it at "
                          "Gradio's default", file=sys.stderr)
            return settings
    raise SystemExit("found neither explorer.ui.server.configure_queue nor a .queue(...) call in app.py: "
                     "say what queue settings the bare app should copy")
