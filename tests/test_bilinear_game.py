"""The notes' game min_x max_y x*y: each way of stepping against its closed form and its update matrix, and the
Playground's handler on bad input."""

import gradio as gr
import numpy as np
import pytest

from explorer import bilinear_game
from explorer.bilinear_game import METHODS, play, spectral_radius, update_matrix
from explorer.ui.playground import bilinear

LRS = (0.05, 0.2, 0.5)


@pytest.mark.parametrize("lr", LRS)
def test_simultaneous_steps_spiral_out_by_the_closed_form(lr):
    """|z_t| = |z_0| (1 + lr^2)^(t/2): a scaled rotation's radius grows by the same factor every step."""
    path = play("simultaneous", lr, 60)
    radii = np.hypot(*path.T)
    np.testing.assert_allclose(radii, radii[0] * (1 + lr**2) ** (np.arange(61) / 2), rtol=1e-12)
    assert radii[-1] > 1.05 * radii[0]


@pytest.mark.parametrize("lr", LRS)
def test_alternating_steps_cycle_on_their_invariant_ellipse(lr):
    """Q = x^2 + y^2 - lr*x*y is the same after every step, and the radius neither grows nor shrinks over
    many turns: the players circle the equilibrium for ever."""
    path = play("alternating", lr, 3000)
    q = path[:, 0] ** 2 + path[:, 1] ** 2 - lr * path[:, 0] * path[:, 1]
    np.testing.assert_allclose(q, q[0], rtol=1e-9)
    radii = np.hypot(*path.T)
    # an ellipse Q = c lies between radii sqrt(c / (1 + lr/2)) and sqrt(c / (1 - lr/2))
    assert radii.min() >= np.sqrt(q[0] / (1 + lr / 2)) * (1 - 1e-9)
    assert radii.max() <= np.sqrt(q[0] / (1 - lr / 2)) * (1 + 1e-9)
    # and it goes round: x changes sign
    assert path[:, 0].min() < 0 < path[:, 0].max()


@pytest.mark.parametrize("lr", LRS)
def test_extragradient_steps_converge_by_the_closed_form(lr):
    path = play("extragradient", lr, 60)
    radii = np.hypot(*path.T)
    np.testing.assert_allclose(radii, radii[0] * (1 - lr**2 + lr**4) ** (np.arange(61) / 2), rtol=1e-12)
    assert radii[-1] < 0.95 * radii[0]


@pytest.mark.parametrize("lr", LRS)
def test_optimistic_steps_converge_to_the_equilibrium(lr):
    path = play("optimistic", lr, 10_000)  # lr 0.05 takes ~5,500 steps to get there
    assert np.hypot(*path[-1]) < 1e-3 * np.hypot(*path[0])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("lr", LRS)
def test_each_path_is_its_update_matrix_applied_step_by_step(method, lr):
    """The stepping code against the linear map written out from the papers' update rules."""
    path = play(method, lr, 25)
    matrix = update_matrix(method, lr)
    state = np.array([*path[0], *path[0]][: len(matrix)])
    if len(matrix) == 4:  # the optimistic first step has no last gradient: it takes the plain one
        state = np.array([*path[1], *path[0]])
        path = path[1:]
    for expected in path[1:]:
        state = matrix @ state
        np.testing.assert_allclose(state[:2], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lr", LRS)
def test_spectral_radii_say_out_round_in_as_the_closed_forms(lr):
    assert spectral_radius("simultaneous", lr) == pytest.approx(np.sqrt(1 + lr**2), rel=1e-12)
    assert spectral_radius("alternating", lr) == pytest.approx(1.0, rel=1e-12)
    assert spectral_radius("extragradient", lr) == pytest.approx(np.sqrt(1 - lr**2 + lr**4), rel=1e-12)
    assert spectral_radius("optimistic", lr) < 1


def test_a_diverging_path_stops_before_it_overflows():
    path = play("simultaneous", 1.5, 1000)
    assert np.isfinite(path).all() and len(path) < 1001
    assert np.hypot(*path[-1]) > bilinear_game.FAR
    image = bilinear_game.draw({"simultaneous": path})
    assert image.shape == (bilinear_game.PIXELS, bilinear_game.PIXELS, 3)


def test_the_handler_draws_every_chosen_path_and_says_how_it_went():
    plane, lines = bilinear(list(METHODS), 0.2, 150)
    assert plane.shape == (bilinear_game.PIXELS, bilinear_game.PIXELS, 3)
    for method, word in zip(METHODS, ("spirals out", "cycles", "converges", "converges")):
        assert f"**{method}**: {word}" in lines
    # each chosen path is drawn in its own colour
    for method in METHODS:
        assert (plane.reshape(-1, 3) == bilinear_game.COLOURS[method]).all(1).any(), method
    only, lines = bilinear(["alternating"], 0.2, 150)
    assert "simultaneous" not in lines
    assert not (only.reshape(-1, 3) == bilinear_game.COLOURS["simultaneous"]).all(1).any()


@pytest.mark.parametrize("methods, lr, steps, message", [
    ([], 0.2, 100, "at least one"),
    (None, 0.2, 100, "at least one"),
    (["sideways"], 0.2, 100, "method"),
    (list(METHODS), 0.0, 100, "learning rate"),
    (list(METHODS), float("nan"), 100, "learning rate"),
    (list(METHODS), "fast", 100, "learning rate"),
    (list(METHODS), 0.2, 0, "steps"),
    (list(METHODS), 0.2, 10**9, "steps"),
    (list(METHODS), 0.2, 2.5, "steps"),
])
def test_the_handler_refuses_bad_arguments(methods, lr, steps, message):
    with pytest.raises(gr.Error, match=message):
        bilinear(methods, lr, steps)
