"""The shapes world: generated from a seed (the same seed, the same bytes), every factor in its documented range
and independent of the others, drawn where its factors say, and anti-aliased so small moves make small changes."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.domains.shapes import FACTORS, RANGES, SHAPES, SIZE, generate, render, split


def test_the_same_seed_gives_the_same_bytes_and_another_seed_others():
    a, factors_a = generate(300, seed=7)
    b, factors_b = generate(300, seed=7)
    assert a.dtype == np.uint8 and a.shape == (300, SIZE, SIZE, 3) and a.tobytes() == b.tobytes()
    assert all(np.array_equal(factors_a[k], factors_b[k]) for k in FACTORS)
    assert generate(300, seed=8)[0].tobytes() != a.tobytes()


def test_factors_are_in_their_ranges_and_independent():
    _, factors = generate(5000, seed=3)
    assert set(np.unique(factors["shape"])) == set(range(len(SHAPES)))
    for name, (low, high) in RANGES.items():
        assert low <= factors[name].min() and factors[name].max() < high
    table = np.stack([factors[k] for k in FACTORS], 1).astype(np.float64)
    correlation = np.corrcoef(table.T) - np.eye(len(FACTORS))
    assert np.abs(correlation).max() < 0.05  # independent draws: |r| ~ 1/sqrt(5000) = 0.014


def one(**values):
    base = {"shape": 1, "hue": 0.0, "background": 0.2, "scale": 6.0, "rotation": 0.0, "x": 16.0, "y": 16.0}
    return {k: np.array([v]) for k, v in {**base, **values}.items()}


def test_a_shape_is_drawn_where_its_factors_say():
    image = render(one(shape=0, x=12.0, y=20.0, scale=5.0, background=0.0)).astype(np.float64)[0]
    ink = image.max(axis=2)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    assert (ink * xs).sum() / ink.sum() == pytest.approx(12.0, abs=0.05)
    assert (ink * ys).sum() / ink.sum() == pytest.approx(20.0, abs=0.05)
    # a circle of radius 5: its coverage sums to its area
    assert (ink / ink.max()).sum() == pytest.approx(np.pi * 25, rel=0.03)
    red = render(one(hue=0.0, background=0.0))[0, 16, 16]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert render(one(background=0.5))[0, 0, 0].tolist() == [128, 128, 128]


def test_drawing_is_anti_aliased_so_small_moves_make_small_changes():
    image = render(one(rotation=37.0, x=16.3))[0]
    assert len(np.unique(image[..., 0])) > 8  # edge pixels take levels between page and shape
    steps = [np.abs(render(one(x=16.0 + d)).astype(int) - render(one(x=16.0)).astype(int)).sum() for d in (0.1, 0.2, 0.4)]
    assert 0 < steps[0] < steps[1] < steps[2]
    # a turn by the symmetry period is the same picture: rotation is a phase of it
    assert np.abs(render(one(rotation=0.0)).astype(int) - render(one(rotation=359.999)).astype(int)).max() <= 1


def test_the_splits_are_fixed_and_disjoint():
    train, _ = split("train")
    heldout, _ = split("heldout")
    assert len(train) == 20_000 and len(heldout) == 2_000
    assert not set(map(bytes, heldout[:200])) & set(map(bytes, train[:2000]))
    with pytest.raises(ValueError, match="split must be one of"):
        split("test")
