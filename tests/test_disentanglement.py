"""MIG and DCI against values computed by hand on small codes, and at their two ends: a code that copies each
factor into a coordinate of its own scores 1, one independent of the factors scores near 0."""

from __future__ import annotations

import math

import numpy as np
import pytest

from explorer.disentanglement import dci, dci_scores, discretise, entropy, mig, mutual_information


def test_mutual_information_and_entropy_by_hand():
    v = np.array([0, 0, 1, 1])
    assert entropy(v) == pytest.approx(math.log(2))
    assert mutual_information(v, v) == pytest.approx(math.log(2))
    assert mutual_information(v, np.array([0, 1, 0, 1])) == pytest.approx(0, abs=1e-12)
    # joint of z=[0,1,1,1] and v: (0,0) 1/4, (1,0) 1/4, (1,1) 1/2; p(z) = 1/4, 3/4; p(v) = 1/2, 1/2
    by_hand = 0.25 * math.log(0.25 / (0.25 * 0.5)) + 0.25 * math.log(0.25 / (0.75 * 0.5)) + 0.5 * math.log(0.5 / (0.75 * 0.5))
    assert mutual_information(np.array([0, 1, 1, 1]), v) == pytest.approx(by_hand)


def test_mig_by_hand():
    v = np.array([[0], [0], [1], [1]])
    # the best coordinate copies v (I = ln 2), the second knows a little (the value above): gap / H(v)
    second = 0.25 * math.log(2) + 0.25 * math.log(2 / 3) + 0.5 * math.log(4 / 3)
    codes = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    assert mig(codes, v) == pytest.approx((math.log(2) - second) / math.log(2))
    assert mig(np.array([[0.0, 5.0], [0.0, 5.0], [1.0, 5.0], [1.0, 5.0]]), v) == pytest.approx(1.0)
    assert mig(np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]), v) == pytest.approx(0.0)  # two copies: no gap


def test_a_perfect_code_scores_one_and_a_random_one_near_zero():
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, 3, 5000), rng.uniform(0, 1, 5000), rng.uniform(-2, 2, 5000)], 1)
    perfect = np.stack([3.0 * factors[:, 2] + 1, -factors[:, 0], 0.5 * factors[:, 1]], 1)  # permuted, rescaled
    train = rng.random(5000) < 0.8
    assert mig(perfect, factors) > 0.98  # measured: 0.991 (the second-best coordinate's MI is biased above 0)
    d, c, i = dci(perfect, factors, train, penalty=1e-6)
    assert d > 0.999 and c > 0.999 and i > 0.999
    noise = rng.normal(size=(5000, 4))
    assert mig(noise, factors) < 0.05  # measured: 0.0007
    d, c, i = dci(noise, factors, train)
    assert d < 0.3 and c < 0.3 and i < 0.01  # measured: 0.06, 0.10, -0.003


def test_dci_scores_by_hand():
    assert dci_scores(np.eye(2)) == pytest.approx((1.0, 1.0))
    assert dci_scores(np.ones((2, 2))) == pytest.approx((0.0, 0.0))
    # code 0 carries factor 0 alone (D 1, weight 2/4), code 1 both equally (D 0, weight 2/4); factor 0 is split
    # 2/3, 1/3 over the codes, factor 1 sits in code 1 alone
    split = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert dci_scores(np.array([[2.0, 0.0], [1.0, 1.0]])) == pytest.approx((0.5, ((1 - split) + 1) / 2))
    # a factor no code carries is as incomplete as can be
    assert dci_scores(np.array([[1.0, 0.0], [1.0, 0.0]])) == pytest.approx((1.0, 0.0))


def test_discretise_keeps_discrete_factors_and_bins_continuous_ones():
    values = np.array([[5.0, 0.0], [7.0, 0.5], [5.0, 1.0], [9.0, 0.25]])
    binned = discretise(values, bins=3)
    assert binned[:, 0].tolist() == [0, 1, 0, 2]
    values = np.stack([np.arange(10.0), np.arange(10.0)], 1)
    assert discretise(values, bins=5)[:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
