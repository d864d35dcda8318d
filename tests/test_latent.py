from __future__ import annotations

import math

import pytest
import torch

from explorer.latent import lerp, path, principal_directions, slerp

from conftest import tiny_model


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
