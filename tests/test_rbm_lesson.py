"""The exact-gradient-versus-CD lesson: the exact gradient is the notes' rule with the model term enumerated,
exact training climbs the exact likelihood at every step, and the Playground's handler refuses bad input."""

import gradio as gr
import pytest
import torch

from explorer import rbm_lesson
from explorer.models.rbm import RBM, RBMConfig, all_binary_states
from explorer.ui.playground import rbm_exact_vs_cd


@pytest.fixture(scope="module")
def digits():
    return rbm_lesson.tiny_digits()


def test_tiny_digits_are_binary_4x4_and_varied(digits):
    assert digits.shape == (rbm_lesson.DIGITS, 16) and set(digits.unique().tolist()) == {0.0, 1.0}
    assert len(digits.unique(dim=0)) > 40  # many different patterns, not one blob


def test_the_exact_gradient_is_the_notes_rule_with_the_model_term_enumerated(digits):
    """-d log-likelihood / dW = -(<s (W's)'>_data - sum over all 2^16 states of p(s) s (W's)')."""
    torch.manual_seed(0)
    model = RBM(RBMConfig(visible=16, hidden=3, units="spin-gaussian", persistent=False)).double()
    with torch.no_grad():
        model.weight.normal_(0, 0.2), model.visible_bias.normal_(0, 0.2)
    (-rbm_lesson.exact_log_likelihood(model, digits)).backward()
    with torch.no_grad():
        states = 2 * all_binary_states(16).double() - 1
        p = torch.softmax(-model.free_energy((states + 1) / 2), 0)
        data = 2 * digits - 1
        rule = data.T @ (data @ model.weight) / len(data) - (states * p[:, None]).T @ (states @ model.weight)
    torch.testing.assert_close(model.weight.grad, -rule)


def test_exact_training_climbs_and_cd_learns_from_the_same_start(digits):
    results = rbm_lesson.train_three(hidden=4, k=5, steps=40, lr=0.02, data=digits)
    curves = {m: torch.tensor(r["log_likelihood"]) for m, r in results.items()}
    assert len({float(c[0]) for c in curves.values()}) == 1  # the same weights to start with
    exact = curves["exact gradient"]
    assert (exact.diff() > -1e-9).all()  # gradient ascent with a small step never loses likelihood
    for method in ("CD-1", "CD-k"):  # CD learns too, to within a nat of the exact gradient after 40 updates
        assert curves[method][-1] > curves[method][0] + 2
        assert abs(float(curves[method][-1] - exact[-1])) < 1.0
    # measured here: -10.94 to -4.06 (exact), -4.12 (CD-1), -4.08 (CD-5)


def test_runs_are_seeded(digits):
    one = rbm_lesson.train_three(hidden=2, k=2, steps=5, lr=0.02, data=digits)
    two = rbm_lesson.train_three(hidden=2, k=2, steps=5, lr=0.02, data=digits)
    assert all(one[m]["log_likelihood"] == two[m]["log_likelihood"] for m in rbm_lesson.METHODS)


@pytest.mark.parametrize("args, message", [
    ((0, 10, 100, 0.05), "hidden units"),
    ((8, 1, 100, 0.05), "k"),
    ((8, 10, 10**6, 0.05), "updates"),
    ((8, 10, 100, 5.0), "learning rate"),
    ((8, 10, 100, float("nan")), "learning rate"),
    (("many", 10, 100, 0.05), "hidden units"),
])
def test_the_handler_refuses_bad_arguments(args, message):
    with pytest.raises(gr.Error, match=message):
        rbm_exact_vs_cd(*args)


def test_the_handler_draws_three_curves_and_names_them():
    curves, lines = rbm_exact_vs_cd(2, 3, 12, 0.05)
    assert curves.shape == (240, 520, 3)
    assert all(name in lines for name in ("exact gradient", "CD-1", "CD-3"))
