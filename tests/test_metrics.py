from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.metrics import (class_shares, frechet_distance, gaussian_stats, inception_score, inception_score_splits,
                              nearest_distances)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    expected = ((mu_a - mu_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    assert abs(frechet_distance((mu_a, np.diag(var_a)), (mu_b, np.diag(var_b))) - expected) < 1e-9


def test_frechet_distance_of_samples_of_one_distribution_is_small_and_symmetric():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(5, 5))
    a, b = rng.normal(size=(20000, 5)) @ mixing, rng.normal(size=(20000, 5)) @ mixing
    shifted = b + 1.0
    d_same, d_shift = frechet_distance(gaussian_stats(a), gaussian_stats(b)), frechet_distance(gaussian_stats(a), gaussian_stats(shifted))
    assert d_same < 0.05 and abs(d_shift - 5.0) < 0.2
    assert abs(frechet_distance(gaussian_stats(a), gaussian_stats(shifted)) - frechet_distance(gaussian_stats(shifted), gaussian_stats(a))) < 1e-6


def test_inception_score_over_splits_is_the_mean_and_spread_of_each_parts_score():
    even = np.eye(10)[np.arange(100) % 10]  # every part of ten holds each digit once: 10 on each
    assert inception_score_splits(even, 10) == pytest.approx((10.0, 0.0), abs=1e-6)
    sorted_ = np.eye(10)[np.repeat(np.arange(10), 10)]  # each part holds one digit: 1 on each, 10 on the whole
    assert inception_score_splits(sorted_, 10) == pytest.approx((1.0, 0.0), abs=1e-6)
    assert inception_score(sorted_) == pytest.approx(10.0, abs=1e-6)
    # two parts, one of two digits evenly (score 2), one of a single digit (score 1): mean 1.5, sd 0.5
    halves = np.eye(10)[np.r_[np.arange(10) % 2, np.full(10, 7)]]
    assert inception_score_splits(halves, 2) == pytest.approx((1.5, 0.5), abs=1e-6)
    with pytest.raises(ValueError, match="splits"):
        inception_score_splits(even, 0)


def test_inception_score_bounds():
    assert abs(inception_score(np.eye(10)[np.arange(100) % 10]) - 10.0) < 1e-6  # confident and even
    assert abs(inception_score(np.eye(10)[np.zeros(100, dtype=int)]) - 1.0) < 1e-6  # one class only
    assert abs(inception_score(np.full((50, 10), 0.1)) - 1.0) < 1e-6  # unsure


def test_class_shares_and_nearest_distances():
    shares = class_shares(np.eye(10)[[1, 1, 2, 9]])
    assert shares.tolist() == [0, 0.5, 0.25, 0, 0, 0, 0, 0, 0, 0.25]
    refs = torch.zeros(3, 1, 28, 28)
    refs[1] += 1
    queries = torch.zeros(2, 1, 28, 28)
    queries[1] += 0.9
    torch.testing.assert_close(nearest_distances(queries, refs), torch.tensor([0.0, 0.1 * 28]), atol=1e-4, rtol=0)


def test_shipped_classifier_reads_held_out_digits():
    from explorer.data import load_mnist, to_tensor
    from explorer.metrics import load_classifier

    heldout = load_mnist("heldout")
    probs, features = load_classifier("cpu").predict(to_tensor(heldout.images[:500]))
    assert features.shape == (500, 128)
    assert (probs.argmax(1).numpy() == heldout.labels[:500]).mean() >= 0.97
