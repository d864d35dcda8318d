from __future__ import annotations

import math
import shutil

import pytest
import torch

from explorer.checkpoint import CHECKPOINTS_DIR, CheckpointError, read_record, save_checkpoint, weights_sha256
from explorer.latent import DIRECTIONS_FILE, lerp, load_directions, path, principal_directions, save_directions, slerp
from explorer.models import model_class

from conftest import SHIPPED, shipped, tiny_model


def test_slerp_ends_midpoint_and_norm():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    torch.testing.assert_close(slerp(a, b, 0.5), torch.tensor([math.sqrt(0.5)] * 2))  # on the unit circle
    torch.testing.assert_close(lerp(a, b, 0.5), torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel: falls back to lerp


def test_slerp_keeps_gaussian_latents_typical_where_lerp_does_not():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, generator=g), torch.randn(512, generator=g)
    assert abs(slerp(a, b, 0.5).norm() - a.norm()) < 0.05 * a.norm()
    assert lerp(a, b, 0.5).norm() < 0.8 * a.norm()  # the midpoint of a line falls toward the prior's centre


def test_path_shape_and_modes():
    a, b = torch.zeros(1, 28, 28), torch.ones(1, 28, 28)
    frames = path(a, b, 5, "lerp")
    assert frames.shape == (5, 1, 28, 28) and torch.equal(frames[0], a) and torch.equal(frames[-1], b)
    with pytest.raises(ValueError):
        path(a, b, 5, "bezier")


def test_principal_directions_are_unit_sorted_and_move_the_images():
    model = tiny_model("vae")
    directions = principal_directions(model, k=3, samples=200)
    assert directions.vectors.shape == (3, 4)
    torch.testing.assert_close(directions.vectors.norm(dim=1), torch.ones(3))
    shares = directions.explained_variance
    assert (shares[:-1] >= shares[1:]).all() and float(shares.sum()) <= 1
    z = model.sample_latent(1, seed=0)
    moved = model.decode(z + 3 * directions.scale[0] * directions.vectors[0])
    assert not torch.equal(moved, model.decode(z))


SMOOTH = [n for n in SHIPPED if model_class(read_record(CHECKPOINTS_DIR / n)["family"]).smooth_latent]


@pytest.mark.parametrize("name", SMOOTH)
def test_every_shipped_model_ships_principal_directions_for_its_own_weights(name):
    directions = load_directions(CHECKPOINTS_DIR / name)
    assert directions is not None, f"run python -m explorer.latent {name}"
    assert directions.weights_sha256 == weights_sha256(CHECKPOINTS_DIR / name)


def test_principal_directions_refuse_weights_they_were_not_fitted_for(tmp_path):
    folder = tmp_path / "my-vae"
    model = shipped("vae-mnist")
    save_checkpoint(model, folder, "vae")
    model.checkpoint_path = folder  # as if loaded from the copy: the directions record its weights
    directions = principal_directions(model, k=2, samples=50)
    save_directions(directions, folder)
    loaded = load_directions(folder)
    assert torch.equal(loaded.vectors, directions.vectors) and loaded.weights_sha256 == weights_sha256(folder)
    shutil.copy(CHECKPOINTS_DIR / "dae-mnist" / "model.safetensors", folder / "model.safetensors")  # retrained
    with pytest.raises(CheckpointError, match="fitted for other weights") as refused:
        load_directions(folder)
    assert "python -m explorer.latent my-vae" in str(refused.value) and str(tmp_path) not in str(refused.value)


def test_principal_directions_without_a_weights_hash_are_refused_and_unhashed_ones_not_saved(tmp_path):
    from safetensors.torch import save_file

    folder = save_checkpoint(tiny_model("vae"), tmp_path / "old", "vae")
    directions = principal_directions(tiny_model("vae"), k=2, samples=50)
    assert directions.weights_sha256 is None  # built in memory: no checkpoint's weights to name
    with pytest.raises(ValueError, match="not loaded from a checkpoint"):
        save_directions(directions, folder)
    save_file({"vectors": directions.vectors.contiguous(), "explained_variance": directions.explained_variance,
               "scale": directions.scale}, str(folder / DIRECTIONS_FILE))  # the layout from before the hash
    with pytest.raises(CheckpointError, match="do not say which weights.*python -m explorer.latent old"):
        load_directions(folder)
