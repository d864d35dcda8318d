"""What one server shares between its users: models loaded once and never changed by a request, locks that
let one model's slow work go on while others are served, the device every model obeys, and resources that
stay bounded over hours of use (export files, denoising frames, the Playground's history and its RNG)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch

import explorer
from explorer.checkpoint import CheckpointError
from explorer.playground import Playground, Settings
from explorer.ui import common
from explorer.ui import models as models_module
from explorer.ui.models import ModelCache


@pytest.fixture
def cache():
    cache = ModelCache("cpu", names=["vae-mnist", "dcgan-mnist", "flow-mnist"])
    cache.get("vae-mnist")
    return cache


def test_building_one_model_never_blocks_another_already_loaded(cache, monkeypatch):
    """A load that cannot finish until the main thread says so: if the cache held one lock through it, the
    main thread's requests below would wait for it forever (the suite's hang guard would then fail this test)."""
    release, started = threading.Event(), threading.Event()
    real_load = models_module.load_model
    loads = []

    def slow_load(name, device):
        loads.append(name)
        started.set()
        release.wait()
        return real_load(name, device)

    monkeypatch.setattr(models_module, "load_model", slow_load)
    loaders = [threading.Thread(target=cache.get, args=("flow-mnist",)) for _ in range(2)]
    for thread in loaders:
        thread.start()
    started.wait()
    # while flow-mnist is still loading: the loaded VAE serves every kind of request, derived artefacts included
    z = cache.get("vae-mnist").sample_latent(2, seed=0)
    assert cache.decode("vae-mnist", z).shape == (2, 1, 28, 28)
    assert cache.directions("vae-mnist").vectors.shape[1:] == (16,)
    assert cache.attributes("vae-mnist").names[0] == "thickness"
    assert loaders[0].is_alive() and loaders[1].is_alive()  # still waiting: nothing above waited for them
    release.set()
    for thread in loaders:
        thread.join()
    assert loads == ["flow-mnist"]  # two requests at once still load it once
    assert cache.get("flow-mnist") is cache.get("flow-mnist")


def test_a_slow_latent_map_never_blocks_another_models_map(cache, monkeypatch):
    release, started = threading.Event(), threading.Event()
    real_map = models_module.latent_map

    def slow_map(model, images):
        if model.family == "flow":
            started.set()
            release.wait()
        return real_map(model, images)

    monkeypatch.setattr(models_module, "latent_map", slow_map)
    cache.get("flow-mnist")
    builder = threading.Thread(target=cache.latent_map, args=("flow-mnist",))
    builder.start()
    started.wait()
    vae_map, labels = cache.latent_map("vae-mnist")
    assert len(vae_map.coords) == len(labels) == 2000 and builder.is_alive()
    release.set()
    builder.join()


def test_gan_inversion_leaves_the_shared_generator_untouched(cache):
    gan = cache.get("dcgan-mnist")
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    target = gan.decode(gan.sample_latent(1, seed=3))
    results = [None, None]

    def invert(i):
        results[i] = gan.encode(target, steps=30)

    threads = [threading.Thread(target=invert, args=(i,)) for i in range(2)]  # two users inverting at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alone = gan.encode(target, steps=30)
    assert torch.equal(results[0], alone) and torch.equal(results[1], alone)  # neither disturbed the other
    assert not any(p.requires_grad for p in gan.parameters())  # still frozen, as the cache froze it
    assert all(p.grad is None for p in gan.parameters())  # no gradient was accumulated into shared weights
    assert all(torch.equal(before[k], v) for k, v in gan.state_dict().items())


def test_every_model_and_the_classifier_obey_the_device():
    cache = ModelCache("cpu", names=["vae-mnist"])
    assert cache.get("vae-mnist").device == torch.device("cpu")
    assert next(cache.classifier().parameters()).device == torch.device("cpu")
    # Apple's MPS has no float64: those models are placed on the CPU by the app, and refused there by the library
    # with a reason (a torch.device("mps") can be named on any machine; nothing here is moved to it)
    mps = ModelCache("mps", names=["vae-mnist", "flow-mnist", "pixelcnn-mnist", "rbm-mnist", "ddpm-mnist"])
    assert {n: mps.device_for(n).type for n in mps.names} == {
        "vae-mnist": "mps", "ddpm-mnist": "mps", "flow-mnist": "cpu", "pixelcnn-mnist": "cpu", "rbm-mnist": "cpu"}
    for name in ("flow-mnist", "pixelcnn-mnist", "rbm-mnist"):
        with pytest.raises(CheckpointError, match="float64.*MPS"):
            explorer.load_model(name, "mps")


def test_export_folders_are_pruned_by_age(monkeypatch):
    first = common.export_folder()
    (first / "a.gif").write_bytes(b"GIF89a")
    root = first.parent
    assert root.name.startswith("latent-explorer-exports-")
    second = common.export_folder()
    assert first.is_dir() and second.is_dir() and first != second  # a fresh export keeps recent ones
    past = time.time() - common.EXPORT_MAX_AGE_S - 60
    os.utime(first, (past, past))
    third = common.export_folder()
    assert not first.exists() and second.is_dir() and third.is_dir()


def test_playgrounds_never_share_the_global_rng():
    """Two runs with the same settings, whatever the global RNG holds when each is made and while it trains."""
    torch.manual_seed(123)
    a = Playground(Settings("GAN", "two moons", seed=5))
    torch.manual_seed(456)
    b = Playground(Settings("GAN", "two moons", seed=5))
    a.train(10)
    torch.randn(1000)  # another user's request drawing from the global RNG in between
    b.train(10)
    assert torch.equal(a.generated(), b.generated()) and a.losses == b.losses


def test_the_playground_keeps_a_bounded_loss_history(monkeypatch):
    from explorer import playground

    monkeypatch.setattr(playground, "LOSS_HISTORY", 20)
    run = Playground(Settings("flow", "two moons", seed=0))
    lengths = []
    for _ in range(12):
        run.train(10)
        lengths.append(len(run.losses["negative log-likelihood"]))
    assert run.step == 120 and max(lengths) < 40 and min(lengths[2:]) >= 20


def test_denoising_frames_are_kept_compactly():
    from explorer.ui import denoise

    cache = ModelCache("cpu", names=["flow-mnist"])
    *_, last = denoise.run_steps(cache, "flow-mnist", 0, "ddim", 10, 0.0)
    frames = last[3]
    assert all(f["x_t"].dtype == np.uint8 and f["x_t"].shape == (28, 28) for f in frames)
    assert sum(f["x_t"].nbytes + f["x_0"].nbytes for f in frames) <= 2 * 784 * len(frames)
