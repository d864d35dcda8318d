"""How the app is served (explorer/ui/server.py): the flags, password protection of the page and the API, the
upload limit and a queue that, when full, tells the user to retry instead of leaving them waiting. Each is
checked on a small app launched in this process with exactly the options app.py launches the real one with."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.utils import QueueError

from explorer.ui import server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launched(argv: list[str], fn, concurrency_limit="default"):
    """A one-endpoint app (`/work`) served with the options app.py would use for `argv`."""
    args = server.parse_args([*argv, "--port", str(free_port())])
    with gr.Blocks() as app:
        gr.api(fn, api_name="work", concurrency_limit=concurrency_limit)
    server.configure_queue(app, args)
    app.launch(**server.launch_options(args), prevent_thread_lock=True, quiet=True)
    return app, f"http://127.0.0.1:{args.port}/"


def echo(text: str) -> str:
    return text.upper()


def test_flags_and_their_checks(monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")  # as a Hugging Face Space sets it
    monkeypatch.setenv(server.AUTH_VARIABLE, "teacher:secret,ta:other")
    args = server.parse_args([])
    assert args.host == "0.0.0.0" and args.auth == [("teacher", "secret"), ("ta", "other")]
    assert server.parse_args(["--auth", "a:b"]).auth == [("a", "b")]  # the flag wins over the variable
    monkeypatch.delenv(server.AUTH_VARIABLE)
    assert server.parse_args([]).auth is None
    for bad in (["--auth", "nopassword"], ["--auth", ":x"], ["--concurrency", "0"], ["--queue-size", "0"]):
        with pytest.raises(SystemExit):
            server.parse_args(bad)


def test_auth_protects_the_page_and_the_api():
    app, url = launched(["--auth", "teacher:secret"], echo)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:  # the API's schema, without logging in
            urllib.request.urlopen(url + "gradio_api/info")
        assert refused.value.code == 401
        with pytest.raises(Exception):
            Client(url, verbose=False).predict("hi", api_name="/work")
        with pytest.raises(Exception):
            Client(url, auth=("teacher", "wrong"), verbose=False)
        assert Client(url, auth=("teacher", "secret"), verbose=False).predict("hi", api_name="/work") == "HI"
    finally:
        app.close()


def test_uploads_over_the_limit_are_refused_before_they_are_read():
    app, url = launched(["--max-upload", "1kb"], echo)
    try:
        def upload(size: int) -> int:
            boundary = "xyz"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n"
                    "Content-Type: image/png\r\n\r\n").encode() + b"\0" * size + f"\r\n--{boundary}--\r\n".encode()
            request = urllib.request.Request(url + "gradio_api/upload", data=body, method="POST",
                                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
            try:
                return urllib.request.urlopen(request).status
            except urllib.error.HTTPError as error:
                return error.code
        assert upload(500) == 200
        assert upload(50_000) == 413
    finally:
        app.close()


def test_a_full_queue_tells_the_user_to_retry():
    """One event runs (held until released), one waits in the queue of size 1; the third is refused at once
    with Gradio's "queue is full" (the page shows "This application is currently busy. Please try again.")."""
    release, running = threading.Event(), threading.Event()

    def held(text: str) -> str:
        running.set()
        release.wait()
        return text

    app, url = launched(["--queue-size", "1", "--concurrency", "1"], held)
    try:
        clients = [Client(url, verbose=False) for _ in range(3)]
        first = clients[0].submit("a", api_name="/work")
        running.wait()
        second = clients[1].submit("b", api_name="/work")
        while second.status().code.name != "IN_QUEUE":  # until the second has joined the queue
            time.sleep(0.01)  # the polling interval, not a budget
        with pytest.raises(QueueError, match="Queue is full! Please try again"):
            clients[2].predict("c", api_name="/work")
        release.set()
        assert first.result() == "a" and second.result() == "b"
    finally:
        release.set()
        app.close()


def test_a_cached_image_is_never_rewritten_under_a_reader(tmp_path):
    """Gradio names a returned image by its bytes' hash and used to rewrite that file in place on every return,
    truncating it under a request that was sending it to another user."""
    from PIL import Image

    picture = Image.new("L", (28, 28), 128)
    path = Path(server.save_pil_to_cache_atomically(picture, str(tmp_path), format="png"))
    assert Image.open(path).size == (28, 28)
    size = path.stat().st_size
    path.write_bytes(b"x" * size)  # stand-in for the same bytes: an identical image must not touch them
    again = Path(server.save_pil_to_cache_atomically(picture, str(tmp_path), format="png"))
    assert again == path and path.read_bytes() == b"x" * size
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no staging file left behind
    server.install_gradio_fixes()
    from gradio import processing_utils

    assert processing_utils.save_pil_to_cache is server.save_pil_to_cache_atomically


def test_the_cache_sweeper_removes_and_forgets_old_files(tmp_path):
    old, new, gone, untracked, young_untracked = (tmp_path / name / f"{name}.png" for name in
                                                  ("old", "new", "gone", "untracked", "young"))
    for path in (old, new, untracked, young_untracked):
        path.parent.mkdir()
        path.write_bytes(b"png")
    age = server.CACHE_AGE_S
    for path, seconds in ((old, age + 60), (untracked, 2 * age + 60), (young_untracked, 1.5 * age)):
        os.utime(path, (time.time() - seconds,) * 2)

    class App:  # what the sweeper reads of a Blocks
        blocks = {}
        temp_file_sets = [{str(old), str(new), str(gone)}, set()]

    sweeper = server.CacheSweeper(App, tmp_path)
    assert sweeper.sweep() == 2  # the old tracked file, and the untracked one twice the age
    assert App.temp_file_sets[0] == {str(new)}  # what was removed, or already gone, is forgotten
    assert new.is_file() and young_untracked.is_file() and not old.exists() and not untracked.exists()
    assert not old.parent.exists()  # its folder, left empty, went too


def test_a_stopped_server_leaves_no_files_behind(tmp_path):
    """The real app, stopped as a hosting service stops it (SIGTERM): its Gradio cache and its exports go."""
    import subprocess
    import sys

    port = free_port()
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"} | {"TMPDIR": str(tmp_path)}
    log_path = tmp_path.parent / f"{tmp_path.name}-server.log"  # a file, not a pipe (an unread pipe fills and
    # blocks the server), beside tmp_path, where the test checks that nothing is left
    with open(log_path, "wb") as log:
        app = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--device", "cpu"], cwd=root, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:  # until it answers (the hang guard catches one that never does)
            try:
                urllib.request.urlopen(url, timeout=30)
                break
            except OSError:
                assert app.poll() is None, log_path.read_text(errors="replace")[-2000:]
                time.sleep(0.5)  # polling interval, not a budget
        client = Client(url, verbose=False)
        client.predict("vae-mnist", 1, 2, 4, "slerp", api_name="/interpolate")
        client.predict("vae-mnist", 0, 1.0, 4, api_name="/sample")  # images written to the cache
        caches = list(tmp_path.glob("latent-explorer-cache-*"))
        assert len(caches) == 1 and any(p.is_file() for p in caches[0].rglob("*"))
    finally:
        app.terminate()
        app.wait()
    assert app.returncode == 0, log_path.read_text(errors="replace")[-2000:]
    assert not list(tmp_path.glob("latent-explorer-*"))  # the cache and the exports' folder, removed at exit
    # and no file anywhere (torch and gradio make empty folders of their own there at import)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
