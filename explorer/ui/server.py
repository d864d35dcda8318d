"""How the app is served: command-line flags, the queue, the limits that keep one server usable by a class, and
password protection. app.py only parses the flags and calls `serve`; tests build the same launch options.

Defaults suit a shared, hosted server on a small machine: every event goes through Gradio's queue, with at
most CONCURRENCY of one kind (one concurrency group: each event, unless it names a shared lane such as
common.LONG_WORK) running at once, the queue holds at most QUEUE_SIZE waiting events (beyond that a user is told at once that the app is busy and to try again, rather than
waiting minutes), uploads over MAX_UPLOAD are refused before they are read, and Gradio's cache of returned
and uploaded files is emptied of anything older than CACHE_AGE_S (CacheSweeper, not Gradio's delete_cache)."""

from __future__ import annotations

import argparse
import atexit
import ctypes
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
import torch
from gradio import processing_utils
from starlette.middleware import Middleware
from starlette.responses import JSONResponse

CONCURRENCY = 4
QUEUE_SIZE = 64
MAX_UPLOAD = "10mb"  # a 40-megapixel PNG is refused later, by explorer.data; this stops a huge file at the door
# Gradio's copies of results and uploads are deleted once this old (see CacheSweeper): long enough to download a
# GIF or a strip after making it. The soak benchmark's 16 users, back to back, make ~160 files a second, so
# fifteen minutes' worth was 150,000 files, too many to delete in the seconds a host allows a stopping server.
CACHE_AGE_S = 300
# sessions whose state is kept (oldest dropped first). Gradio's 10,000 lets memory grow by ~440 KB for every
# script call made without a session (curl, raw REST), 4.3 GB in all; 1,000 browser tabs is a large class
SESSIONS = 1000
AUTH_VARIABLE = "LATENT_EXPLORER_AUTH"  # "user:password" (or several, comma-separated), instead of --auth


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python app.py", description="Start Latent Explorer.")
    # a hosting service (a Hugging Face Space, say) names the address and port through Gradio's own variables
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--device", default=None, help="cpu, cuda or mps; default: cuda if available, else mps, else cpu")
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio link")
    parser.add_argument("--auth", default=os.environ.get(AUTH_VARIABLE),
                        help=f"user:password (comma-separate several) to protect the page and the API; or set {AUTH_VARIABLE}")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="events run at once")
    parser.add_argument("--queue-size", type=int, default=QUEUE_SIZE, help="events waiting at most; more are told to retry")
    parser.add_argument("--max-upload", default=MAX_UPLOAD, help="largest upload accepted, e.g. 10mb")
    parser.add_argument("--model", action="append", default=[], metavar="PATH_OR_ID",
                        help="also serve your own model (repeatable): a diffusers DDPM/DDIM pipeline folder, a Hugging "
                             "Face repo id in the local cache, a checkpoint folder of this explorer, or file.py:function "
                             "returning an explorer.Adapter (this runs that file's code)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per operation (default: one per core); 1 suits many users (see README)")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.queue_size < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--concurrency, --queue-size and --threads must be at least 1")
    try:
        args.auth = parse_auth(args.auth)
    except ValueError as error:
        parser.error(str(error))
    return args


def parse_auth(text: str | None) -> list[tuple[str, str]] | None:
    """"user:password[,user2:password2]" -> [(user, password), ...]; None or "" -> no protection."""
    if not text:
        return None
    pairs = []
    for entry in text.split(","):
        user, colon, password = entry.strip().partition(":")
        if not colon or not user or not password:
            raise ValueError("--auth takes user:password (comma-separate several users), with neither part empty")
        pairs.append((user, password))
    return pairs


ANALYTICS_EVERY = 100  # events between Gradio's summaries of its own queue (see configure_queue)


def configure_queue(app: gr.Blocks, args: argparse.Namespace) -> gr.Blocks:
    # Gradio rebuilds a pandas summary of every past event after each event, for its monitoring page: 5% of the
    # server's time under 16 users (py-spy), all of it holding the GIL the event loop needs. Once in a hundred
    # events keeps the page current enough. The queue reads the variable when it is made, here.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(ANALYTICS_EVERY))
    return app.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size)


def launch_options(args: argparse.Namespace) -> dict:
    """The keyword arguments for Blocks.launch (head and css are the app's own, added by `serve`)."""
    return dict(server_name=args.host, server_port=args.port, share=args.share, auth=args.auth,
                max_file_size=args.max_upload, state_session_capacity=SESSIONS, show_error=True,
                app_kwargs={"middleware": [Middleware(NamedCallErrors)]})


class NamedCallErrors:
    """ASGI middleware: a call by name (POST /gradio_api/call/v2/NAME with {"seed": 3, ...}) that Gradio cannot turn
    into arguments is answered 422 with what was wrong, instead of a bare 500 "Internal Server Error". Gradio maps
    the names to a list before any of the app's own checks (api.Endpoint) see it, and raises TypeError for a
    missing or unknown name, KeyError for an endpoint that does not exist."""

    ROUTE = "/gradio_api/call/v2/"

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.ROUTE not in scope.get("path", ""):
            return await self.app(scope, receive, send)
        started = False

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except (TypeError, KeyError, ValueError) as error:
            if started:  # a response already on its way cannot be replaced
                raise
            name = scope["path"].split(self.ROUTE, 1)[1].strip("/")
            if isinstance(error, KeyError):
                message = f"there is no endpoint /{name} (GET /gradio_api/info lists them)"
            else:  # Gradio's message, less its advice to click a footer no script has
                message = f"/{name}: {str(error).split(' Please click')[0]}"
            await JSONResponse({"error": message}, status_code=422)(scope, receive, send)


def save_pil_to_cache_atomically(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """Gradio's processing_utils.save_pil_to_cache, but never rewriting a file someone may be reading.

    Gradio names a returned image by the hash of its bytes and rewrites that file in place on every return,
    so when two users get the same image at once (a class all drawing seed 0), one request truncates the file
    while another is sending it: the soak benchmark saw "Too little data for declared Content-Length" and
    broken connections (16 of 4,602 calls). The name fixes the content, so a file already there is left as it
    is (touched, as Gradio's save_file_to_cache does, so the cache ages it from its latest use), and a new
    one is written under a temporary name and renamed into place, whole."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = (folder / f"{name}.{format}").resolve()
    if target.is_file() and target.stat().st_size == len(data):
        os.utime(target)
        return str(target)
    handle, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(staging, target)
    return str(target)


def install_gradio_fixes() -> None:
    """Applied by build_app. Every image component reaches the function through the module, so one assignment
    covers gr.Image, gr.Gallery and the rest."""
    processing_utils.save_pil_to_cache = save_pil_to_cache_atomically


def private_cache() -> Path | None:
    """Gradio's cache (results and uploads) in a folder of this process's own, removed when it stops: Gradio's
    shared default folder outlives the server. A GRADIO_TEMP_DIR set by whoever starts the server is theirs,
    and only the files this app put there are ever removed from it (by CacheSweeper)."""
    if os.environ.get("GRADIO_TEMP_DIR"):
        return None
    folder = Path(tempfile.mkdtemp(prefix="latent-explorer-cache-"))
    os.environ["GRADIO_TEMP_DIR"] = str(folder)  # read by each component and the server as they are made
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


class CacheSweeper:
    """Removes the files Gradio cached for this app once they are CACHE_AGE_S old, and forgets them.

    Gradio's own delete_cache does not survive a busy server: it iterates over its sets of cached files while
    requests add to them, the first "Set changed size during iteration" ends its task for good (seen 15
    minutes into the soak benchmark), and from then on nothing is deleted; and it never drops a path that is
    already gone, so the sets grow with every image ever served. Here each set is copied before it is read
    (list() of a set runs without letting another thread in) and what was removed, or was gone, is dropped.
    In a folder of the app's own (`private_cache`) the files no set knows of are removed at twice the age
    (Gradio leaves an empty file behind for each upload), and the folders left empty."""

    def __init__(self, app: gr.Blocks, folder: Path | None, age_s: float = CACHE_AGE_S) -> None:
        self.app, self.folder, self.age_s = app, folder, age_s

    def sweep(self) -> int:
        """One pass; -> the files removed."""
        oldest, removed = time.time() - self.age_s, 0
        kept = set().union(*(getattr(block, "keep_in_cache", set()) for block in list(self.app.blocks.values())))
        for tracked in list(self.app.temp_file_sets):
            forget = set()
            for path in list(tracked):
                if path in kept:
                    continue
                try:
                    if os.stat(path).st_mtime < oldest:
                        os.remove(path)
                        removed += 1
                        forget.add(path)
                except FileNotFoundError:
                    forget.add(path)
                except OSError:  # in use right now: the next pass
                    pass
            tracked.difference_update(forget)
        if self.folder is not None:
            removed += sweep_folder(self.folder, time.time() - 2 * self.age_s)
        return removed

    def run_forever(self) -> None:
        libc = glibc()
        while True:
            time.sleep(self.age_s / 4)  # so a file lives at most 1.25 times the age
            self.sweep()
            if libc is not None:
                libc.malloc_trim(0)  # hand the memory freed since back to the system (see tame_malloc)

    def start(self) -> None:
        threading.Thread(target=self.run_forever, daemon=True, name="cache-sweeper").start()


def sweep_folder(folder: Path, oldest: float) -> int:
    """Remove the files under `folder` last touched before `oldest`, and the folders left empty; -> files removed."""
    removed = 0
    for root, dirs, files in os.walk(folder, topdown=False):  # os.walk skips what vanishes while it walks
        for name in files:
            try:
                if os.stat(os.path.join(root, name)).st_mtime < oldest:
                    os.remove(os.path.join(root, name))
                    removed += 1
            except OSError:
                pass
        if root != str(folder):
            try:
                os.rmdir(root)  # only if empty
            except OSError:
                pass
    return removed


M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def glibc():
    """The C library when it is glibc (Linux), else None: the two calls below exist only there."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def tame_malloc() -> None:
    """Two malloc arenas, not glibc's eight per core: each thread that meets another in malloc gets an arena of its
    own, and a server's worker threads leave each fragmented, so resident memory crept up for as long as it
    served. Seven minutes of five soak users: +109 MB by default, +42 MB with two arenas, +63 MB with the
    periodic trim alone (CacheSweeper calls malloc_trim after each pass). Before any worker thread exists."""
    libc = glibc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, 2)


def open_models(sources: list[str], device) -> dict:
    """--model's sources, opened (explorer.open), each under a name of its own: the folder's or repo's last part
    ("someone/sd-class-butterflies-32" -> "sd-class-butterflies-32"), numbered where two would clash or one
    would take a shipped model's name."""
    from ..checkpoint import list_models
    from ..open import load_model

    taken, opened = set(list_models()), {}
    for source in sources:
        model = load_model(source, device)
        stem = str(source).rstrip("/").replace("\\", "/").split("/")[-1].replace(".py:", "-") or "model"
        stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem)
        name, n = stem, 2
        while name in taken:
            name, n = f"{stem}-{n}", n + 1
        taken.add(name)
        opened[name] = model
        print(f"* Opened {source} as {name}: {model.family}, images {'x'.join(map(str, model.image_shape))}", flush=True)
    return opened


def stop_once(signum, frame) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def serve(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tame_malloc()
    folder = private_cache()  # before any component exists: each reads the cache folder when it is made
    # a hosting service stops the server with SIGTERM: handled as Ctrl-C, so Gradio closes and the exit handlers
    # remove the cache and the exports; a second signal while they run is ignored, or it would cut them short
    signal.signal(signal.SIGTERM, stop_once)
    signal.signal(signal.SIGINT, stop_once)
    if args.threads is not None:
        # many users' small requests at once gain from one thread each; one user's diffusion run from several
        torch.set_num_threads(args.threads)
    from ..open import OpenError
    from . import FRONTEND_CSS, FRONTEND_HEAD, build_app
    from .models import ModelCache

    try:
        opened = open_models(args.model, args.device)
    except OpenError as error:
        raise SystemExit(f"python app.py: {error}") from None
    models = ModelCache(args.device, opened=opened)
    app = configure_queue(build_app(models), args)
    models.fit_opened_in_background()  # the Edit tab's principal directions, before anyone asks for them
    CacheSweeper(app, folder).start()
    app.launch(**launch_options(args), head=FRONTEND_HEAD, css=FRONTEND_CSS)
