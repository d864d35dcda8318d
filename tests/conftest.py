"""Shared fixtures: tiny models of every family (fast enough to build and run in every test) and the
shipped checkpoints."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from explorer.checkpoint import CHECKPOINTS_DIR, build_model

# the smallest config of each family that still exercises every code path
TINY_CONFIGS = {
    "vae": {"latent_dim": 4, "channels": [4, 8], "hidden": 16},
    "autoencoder": {"latent_dim": 3, "channels": [4, 8], "hidden": 16},
    "dae": {"latent_dim": 3, "channels": [4, 8], "hidden": 16, "noise_std": 0.3},
    "cvae": {"latent_dim": 3, "channels": [4, 8], "hidden": 16},
    "gan": {"latent_dim": 8, "g_channels": 8, "d_channels": 4, "inversion_steps": 5, "inversion_starts": 2},
    "wgan": {"loss": "wgan-gp", "n_critic": 2, "latent_dim": 8, "g_channels": 8, "d_channels": 4},
    "sngan": {"latent_dim": 8, "g_channels": 8, "d_channels": 4, "spectral_norm": True, "g_lr_scale": 0.5, "d_lr_scale": 2.0},
    "flow": {"steps_per_scale": [2, 2], "hidden_channels": [8, 8]},
    "diffusion": {"block_channels": [8, 16], "train_timesteps": 50, "decode_steps": 5},
    "pixelcnn": {"channels": 4, "layers": 2, "kernel": 3, "head_channels": 8},
    "rbm": {"hidden": 8, "gibbs_steps": 20, "persistent": False, "cd_k": 1},
    "pcd": {"hidden": 8, "gibbs_steps": 20, "persistent": True, "chains": 16, "cd_k": 2},
}
SHIPPED = ["vae-mnist", "dcgan-mnist", "wgan-gp-mnist", "flow-mnist", "ddpm-mnist", "ae-mnist", "dae-mnist", "ae2d-mnist", "vae2d-mnist",
           "cvae-mnist", "rbm-mnist", "rbm-spin-mnist", "pixelcnn-mnist"]


FAMILY_OF = {"wgan": "gan", "sngan": "gan", "dae": "autoencoder", "pcd": "rbm"}  # tiny configs that are variants of another family


def tiny_model(key: str, seed: int = 0):
    family = FAMILY_OF.get(key, key)
    torch.manual_seed(seed)
    model = build_model(family, TINY_CONFIGS[key])
    if hasattr(model, "initialise_from_data"):
        model.initialise_from_data(torch.rand(16, 1, 28, 28))
    return model.eval()


@pytest.fixture(params=sorted(TINY_CONFIGS))
def tiny(request):
    return tiny_model(request.param)


@pytest.fixture(scope="session")
def digits():
    from explorer.data import load_mnist, to_tensor

    heldout = load_mnist("heldout")
    return to_tensor(heldout.images[:16]), heldout.labels[:16]


def shipped(name: str):
    if not (CHECKPOINTS_DIR / name / "model.safetensors").is_file():
        pytest.fail(f"shipped checkpoint {name} is missing from checkpoints/")
    from explorer import load_model

    return load_model(name, "cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVER_LOGS: list[Path] = []  # the log of each app running_app has started and not yet stopped


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report ends with the last lines each running app printed: a browser test that hangs in
    CI shows what its server was doing (the hang guard's stack dump covers only the test's own process)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when == "call":
        for name, value in getattr(item, "funcargs", {}).items():  # each browser page the test drove, as it stands
            if type(value).__name__ == "Page" and hasattr(value, "inner_text"):
                try:
                    text = value.evaluate("document.body.innerText.slice(0, 3000)")
                except Exception as error:  # a closed page, a dead browser: say so, and keep the real failure
                    text = f"(unreadable: {error})"
                report.sections.append((f"the page {name!r} showed", text))
        for log in SERVER_LOGS:
            lines = log.read_text(errors="replace").splitlines()[-60:] if log.is_file() else ["(no log)"]
            report.sections.append((f"the app's log, {log.parent.name}", "\n".join(lines)))


@contextlib.contextmanager
def running_app(log_dir: Path, setup: str = "", args: tuple[str, ...] = ()):
    """The real app (`python app.py --device cpu`) on a free port, -> its URL once it answers; with `setup`, that
    Python code runs first in the server's process (e.g. to change a module's constant); `args` are more of
    app.py's flags (--model PATH, say). Its output goes to
    a file in `log_dir`: Gradio prints a traceback for every refused call, and a pipe that nobody reads fills
    after 64 KB and stops the server in the middle of a print."""
    port, log = free_port(), log_dir / "server.log"
    program = ["-c", f"import sys\n{setup}\nfrom explorer.ui.server import serve\nserve(sys.argv[1:])"] if setup else ["app.py"]
    with open(log, "wb") as output:
        server = subprocess.Popen([sys.executable, *program, "--port", str(port), "--device", "cpu", *args],
                                  cwd=Path(__file__).resolve().parent.parent, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    SERVER_LOGS.append(log)
    try:
        while True:  # until it answers or exits (a server that never does is caught by the hang guard)
            try:
                urllib.request.urlopen(url, timeout=30)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"the app exited: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.5)  # polling interval, not a budget
        yield url
    finally:
        SERVER_LOGS.remove(log)
        server.terminate()
        server.wait()  # SIGTERM stops it cleanly (server.stop_once); one that does not is the hang guard's
