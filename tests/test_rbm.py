"""The RBM against quantities enumerated over every state of a tiny machine: the free energy, the partition
function, and the contrastive-divergence update."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from explorer.models.rbm import RBM, RBMConfig

from conftest import shipped

VISIBLE, HIDDEN = 6, 4


def tiny_rbm(seed: int = 0, **options) -> RBM:
    torch.manual_seed(seed)
    options = {"persistent": False, "cd_k": 1} | options  # plain CD-k unless a test asks for PCD
    model = RBM(RBMConfig(visible=VISIBLE, hidden=HIDDEN, **options)).double()
    with torch.no_grad():  # weights large enough for a distribution far from uniform
        model.weight.normal_(0, 1.0)
        model.visible_bias.normal_(0, 0.5)
        model.hidden_bias.normal_(0, 0.5)
    return model


def all_states(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def energy(model: RBM, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """E(v, h) = -b.v - c.h - v'Wh for every pair of rows (V states x H states)."""
    return -(v @ model.visible_bias)[:, None] - (h @ model.hidden_bias)[None, :] - v @ model.weight @ h.T


def test_free_energy_and_partition_function_match_enumeration():
    model = tiny_rbm()
    v, h = all_states(VISIBLE), all_states(HIDDEN)
    with torch.no_grad():
        joint = -energy(model, v, h)  # log of the unnormalised p(v, h), 64 x 16
        torch.testing.assert_close(model.free_energy(v), -torch.logsumexp(joint, 1))
        log_z = torch.logsumexp(joint.flatten(), 0)
        torch.testing.assert_close(model.log_partition_exact(), log_z)
        # p(v) = exp(-F(v)) / Z sums to one over the 64 visible states
        torch.testing.assert_close(torch.exp(-model.free_energy(v) - log_z).sum(), torch.tensor(1.0, dtype=torch.float64))


def test_conditionals_match_the_joint():
    model = tiny_rbm(seed=1)
    v, h = all_states(VISIBLE), all_states(HIDDEN)
    with torch.no_grad():
        joint = torch.softmax(-energy(model, v, h).flatten(), 0).view(len(v), len(h))
        p_h_given_v = joint / joint.sum(1, keepdim=True)
        torch.testing.assert_close(p_h_given_v @ h, model.hidden_mean(v))  # E[h_j | v] = sigmoid(c_j + v'W_j)
        p_v_given_h = joint / joint.sum(0, keepdim=True)
        torch.testing.assert_close(p_v_given_h.T @ v, model.visible_probs(h))


@pytest.mark.parametrize("k", [1, 3])
def test_cd_k_gradient_is_its_definition(k):
    """The surrogate loss's gradient is the CD-k update of Hinton 2002, Eq. 5, negated:
    <v p(h|v)'>_k - <v p(h|v)'>_0 for W, the visible and hidden means likewise."""
    model = tiny_rbm(seed=2, cd_k=k)
    x = torch.rand(32, VISIBLE, dtype=torch.float64)
    torch.manual_seed(7)
    model.zero_grad()
    model.loss(x)["loss"].backward()

    torch.manual_seed(7)  # the same coin flips, drawn here as the definition says
    with torch.no_grad():
        v0 = torch.bernoulli(x)
        vk = v0
        for _ in range(k):
            vk = torch.bernoulli(model.visible_probs(torch.bernoulli(model.hidden_mean(vk))))
        h0, hk = model.hidden_mean(v0), model.hidden_mean(vk)
    n = len(x)
    torch.testing.assert_close(model.weight.grad, (vk.T @ hk - v0.T @ h0) / n)
    torch.testing.assert_close(model.visible_bias.grad, (vk - v0).mean(0))
    torch.testing.assert_close(model.hidden_bias.grad, (hk - h0).mean(0))


def test_long_chains_give_the_exact_likelihood_gradient():
    """CD-k's negative phase samples the model as k grows: with k = 50 and many chains the update matches the
    gradient of the exact log-likelihood, which needs Z and is enumerated here."""
    model = tiny_rbm(seed=3, cd_k=50)
    data = torch.bernoulli(torch.full((8, VISIBLE), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    log_likelihood = (-model.free_energy(data) - model.log_partition_exact()).mean()
    exact = torch.autograd.grad(log_likelihood, model.weight)[0]

    model.zero_grad()
    torch.manual_seed(0)
    model.loss(data.repeat(2500, 1))["loss"].backward()  # binary data: Bernoulli(x) leaves it as it is
    long_chain_error = (-model.weight.grad - exact).abs().max()
    assert long_chain_error < 0.02, long_chain_error  # measured 0.006, against entries of the gradient up to 0.53
    model.config.cd_k = 1  # and CD-1 is biased: its chains stay near the data
    model.zero_grad()
    torch.manual_seed(0)
    model.loss(data.repeat(2500, 1))["loss"].backward()
    assert (-model.weight.grad - exact).abs().max() > 5 * long_chain_error


def test_persistent_chains_carry_over_between_updates():
    model = tiny_rbm(seed=4, persistent=True, chains=16, cd_k=1)
    x = torch.rand(16, VISIBLE, dtype=torch.float64)
    torch.manual_seed(0)
    model.loss(x)
    after_one = model.chains.clone()
    assert after_one.shape == (16, VISIBLE) and set(after_one.unique().tolist()) <= {0.0, 1.0}
    v_data = torch.bernoulli(x)
    torch.manual_seed(0)  # the next update continues from the chains, not from the data
    negatives = model.negative_samples(v_data)
    torch.manual_seed(0)
    assert torch.equal(negatives, model.gibbs(after_one, 1))


def test_a_chain_depends_on_its_own_latent_only():
    torch.manual_seed(0)
    model = RBM(RBMConfig(hidden=8, gibbs_steps=30)).eval()
    z = model.sample_latent(4, seed=1)
    together = model.decode(z)
    assert torch.equal(model.decode(z[2:3]), together[2:3])
    assert torch.equal(model.decode(torch.cat([z[2:3], z[0:1]]))[0], together[2])


def test_shipped_rbm_gives_digits_low_free_energy_without_overfitting():
    from explorer.data import load_mnist, to_tensor

    model = shipped("rbm-mnist")
    digits = to_tensor(load_mnist("heldout").images[:500])
    heldout = model.image_free_energy(digits).mean()
    train = model.image_free_energy(to_tensor(load_mnist("train").images[:500])).mean()
    # the same ink scattered: each digit's pixels permuted (seed 1: seed 0 is the binarisation's own stream)
    order = torch.randperm(784, generator=torch.Generator().manual_seed(1))
    scattered = model.image_free_energy(digits.flatten(1)[:, order].view_as(digits)).mean()
    assert heldout < scattered - 100  # digits are far more probable than their scattered ink: exp(100) times
    assert abs(heldout - train) < 10  # held-out digits about as probable as training ones (Hinton 2010, Sec. 6)
    record = model.checkpoint_record["metrics"]
    assert record["min_class_share"] >= 0.04 and record["confidence"] >= 0.85  # its 1,000 samples, as evaluated


# --- the notes' machine: visible spins, Gaussian hidden units ------------------------------------------------

def tiny_spin_rbm(seed: int = 0, visible: int = VISIBLE, hidden: int = 2, **options) -> RBM:
    torch.manual_seed(seed)
    options = {"persistent": False, "cd_k": 1} | options
    model = RBM(RBMConfig(visible=visible, hidden=hidden, units="spin-gaussian", **options)).double()
    with torch.no_grad():
        model.weight.normal_(0, 0.6)
        model.visible_bias.normal_(0, 0.5)
    return model


def spin_energy(model: RBM, s: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """The notes' H(s, l) = sum_mu l_mu^2 / 2 - sum_i h_i s_i - sum_{i,mu} W_{i,mu} s_i l_mu, every pair of rows."""
    return 0.5 * (l**2).sum(1)[None, :] - (s @ model.visible_bias)[:, None] - s @ model.weight @ l.T


def test_spin_conditionals_match_the_energy_summed_over_every_spin_state():
    """p(s_i = +1 | l) = 1 / (1 + exp(-2 x_i)) against p(s | l) ~ exp(-H(s, l)) normalised over all 2^6 spin
    states, and l | s ~ N(W's, I): -H(s, l) - log N(l; W's, I) is the same for every l."""
    model = tiny_spin_rbm(seed=1)
    spins = 2 * all_states(VISIBLE) - 1
    l = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p_s_given_l = torch.softmax(-spin_energy(model, spins, l), 0)  # over the spin states, per l
        brute = p_s_given_l.T @ (spins > 0).double()  # P(s_i = +1 | l)
        torch.testing.assert_close(model.visible_probs(l), brute)
        mean = spins @ model.weight  # W's per spin state
        log_normal = -0.5 * ((l[None, :, :] - mean[:, None, :]) ** 2).sum(2) - math.log(2 * math.pi)
        difference = -spin_energy(model, spins, l) - log_normal  # (states, l points): constant along l
        torch.testing.assert_close(difference, difference[:, :1].expand_as(difference))
        torch.testing.assert_close(model.hidden_mean((spins + 1) / 2), mean)


def test_spin_free_energy_is_the_integral_over_the_hidden_units_and_a_hopfield_energy():
    """exp(-F(s)) = the integral of exp(-H(s, l)) over l, by quadrature on a fine 2-D grid; F(s) is the
    Hopfield energy -h.s - s'(W W')s / 2 up to a constant; and p(s) = exp(-F(s)) / Z sums to one."""
    model = tiny_spin_rbm(seed=2)
    v = all_states(VISIBLE)
    spins = 2 * v - 1
    side = torch.linspace(-12, 12, 601, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(side, side, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        integral = torch.logsumexp(-spin_energy(model, spins, grid), 1) + 2 * torch.log(side[1] - side[0])
        torch.testing.assert_close(model.free_energy(v), -integral, rtol=1e-9, atol=1e-9)
        hopfield = -spins @ model.visible_bias - 0.5 * ((spins @ model.weight @ model.weight.T) * spins).sum(1)
        torch.testing.assert_close(model.free_energy(v) - hopfield, torch.full((len(v),), -math.log(2 * math.pi),
                                                                              dtype=torch.float64))
        log_z = model.log_partition_exact()
        torch.testing.assert_close(torch.exp(-model.free_energy(v) - log_z).sum(), torch.tensor(1.0, dtype=torch.float64))


def test_spin_cd_update_is_the_notes_rule():
    """The surrogate's gradient for W is minus the notes' Delta W: <s_i sum_j W_{j,mu} s_j>_data -
    <s_i l_mu>_model, with l at its conditional mean W's at the CD-1 negatives; for the field, <s>_data -
    <s>_model."""
    model = tiny_spin_rbm(seed=3)
    x = torch.rand(32, VISIBLE, dtype=torch.float64)
    torch.manual_seed(7)
    model.zero_grad()
    model.loss(x)["loss"].backward()
    torch.manual_seed(7)
    with torch.no_grad():
        v0 = torch.bernoulli(x)
        s0 = 2 * v0 - 1
        l = s0 @ model.weight + torch.randn(32, 2, dtype=torch.float64)  # l ~ N(W's, I)
        s1 = 2 * torch.bernoulli(torch.sigmoid(2 * (l @ model.weight.T + model.visible_bias))) - 1
        delta_w = (s0.T @ (s0 @ model.weight) - s1.T @ (s1 @ model.weight)) / 32
    torch.testing.assert_close(model.weight.grad, -delta_w)
    torch.testing.assert_close(model.visible_bias.grad, -(s0 - s1).mean(0))


def test_a_spin_chain_depends_on_its_own_latent_only():
    torch.manual_seed(0)
    model = RBM(RBMConfig(hidden=8, gibbs_steps=30, units="spin-gaussian")).eval()
    z = model.sample_latent(4, seed=1)
    together = model.decode(z)
    assert together.shape == (4, 1, 28, 28) and torch.equal(model.decode(z[2:3]), together[2:3])
