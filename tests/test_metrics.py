from __future__ import annotations

import numpy as np
import torch

from explorer.metrics import class_shares, frechet_distance, gaussian_stats, inception_score, nearest_distances


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
