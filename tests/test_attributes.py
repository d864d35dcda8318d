"""Measured attributes against shapes of known size, fitted directions, and edits with locks."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import explorer
import explorer.attributes
import explorer.metrics
from explorer.attributes import (ATTRIBUTES, HOLD_STEP_SD, HOLD_STEPS, SLIDERS, directions_for,
                                 edit, fit_directions, load_attribute_directions, measure, morphometrics,
                                 save_attribute_directions)
from explorer.checkpoint import CHECKPOINTS_DIR, CheckpointError, read_record
from explorer.metrics import load_classifier
from explorer.models import model_class

from conftest import SHIPPED, shipped, tiny_model

ROOT = Path(__file__).resolve().parent.parent
SMOOTH = [n for n in SHIPPED if model_class(read_record(CHECKPOINTS_DIR / n)["family"]).smooth_latent]


def bar(width: int, height: int = 18, shear: float = 0.0, top: int = 5) -> np.ndarray:
    """A white bar `width` pixels wide and `height` tall on black, its top pushed right by `shear` px per row up."""
    image = np.zeros((28, 28), np.float32)
    centre = top + (height - 1) / 2
    for row in range(top, top + height):
        left = 14 - width / 2 + shear * (centre - row)
        image[row, int(round(left)):int(round(left)) + width] = 1
    return image


# --- measures ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [2, 3, 5, 7])
def test_thickness_of_a_bar_is_its_width(width):
    assert morphometrics(bar(width)[None])["thickness"][0] == pytest.approx(width, abs=0.6)


def test_slant_of_a_sheared_bar(width=3):
    for shear in (-0.4, 0.0, 0.25, 0.5):
        slant = morphometrics(bar(width, shear=shear)[None])["slant"][0]
        assert slant == pytest.approx(math.degrees(math.atan(shear)), abs=3.0)  # right-leaning is positive


def test_width_height_and_area_of_a_rectangle():
    figures = morphometrics(bar(9, height=14)[None])
    assert figures["width"][0] == pytest.approx(9, abs=0.6)
    assert figures["height"][0] == pytest.approx(14, abs=0.6)
    assert figures["area"][0] == 9 * 14


def test_a_batch_measures_each_image_as_if_alone_and_blank_is_zero():
    images = np.stack([bar(2), bar(7, shear=0.3), np.zeros((28, 28), np.float32), bar(4, height=10)])
    batch = morphometrics(torch.from_numpy(images).unsqueeze(1))
    for i in range(len(images)):
        alone = morphometrics(images[i:i + 1])
        for name in ATTRIBUTES:
            assert batch[name][i] == pytest.approx(alone[name][0])
    assert all(batch[name][2] == 0 for name in ATTRIBUTES)


def test_measure_adds_classifier_probabilities(digits):
    images, labels = digits
    figures = explorer.measure(images)
    assert figures["probs"].shape == (16, 10) and np.allclose(figures["probs"].sum(1), 1, atol=1e-5)
    assert (figures["digit"] == labels).mean() >= 0.9
    assert set(ATTRIBUTES) <= set(figures)


def test_measure_refuses_wrong_shapes():
    with pytest.raises(ValueError, match="shape"):
        morphometrics(np.zeros((28, 28)))


# --- directions -------------------------------------------------------------------------------------------------

def test_fitting_on_any_family_gives_unit_directions_and_finite_steps():
    model = tiny_model("gan")
    directions = fit_directions(model, samples=120, calibration=8)
    assert directions.vectors.shape == (15, *model.latent_shape)
    norms = directions.vectors.flatten(1).norm(dim=1)
    fitted = torch.tensor([directions.record["attributes"][n]["fitted"] for n in directions.names])
    assert torch.allclose(norms[fitted], torch.ones(int(fitted.sum())), atol=1e-4) and (norms[~fitted] == 0).all()
    assert torch.isfinite(directions.step).all() and (directions.step[fitted] != 0).all()
    for i, name in enumerate(directions.names):  # signed where calibrated, so +1 moves the attribute up
        fit = directions.record["attributes"][name]
        if fit["calibrated"]:
            assert float(directions.step[i]) == pytest.approx(fit["sd"] / fit["measured_slope"], rel=1e-5)
        elif fit["fitted"]:
            assert float(directions.step[i]) > 0  # the probe distance along the fit's own direction
    for name in directions.names:
        if not directions.record["attributes"][name]["fitted"]:
            with pytest.raises(ValueError, match="no direction"):
                edit(model, model.sample_latent(1), {name: 1.0}, directions=directions)


def test_directions_save_and_load_identically(tmp_path):
    directions = directions_for(shipped("vae-mnist"))
    shutil.copy(CHECKPOINTS_DIR / "vae-mnist" / "model.safetensors", tmp_path)  # the weights they were fitted for
    save_attribute_directions(directions, tmp_path)
    loaded = load_attribute_directions(tmp_path)
    assert loaded.names == directions.names and loaded.record == directions.record
    assert torch.equal(loaded.vectors, directions.vectors) and torch.equal(loaded.step, directions.step)


def test_directions_refuse_weights_they_were_not_fitted_for(tmp_path):
    folder = tmp_path / "my-vae"
    shutil.copytree(CHECKPOINTS_DIR / "vae-mnist", folder)
    assert load_attribute_directions(folder) is not None
    shutil.copy(CHECKPOINTS_DIR / "dae-mnist" / "model.safetensors", folder / "model.safetensors")  # retrained
    with pytest.raises(CheckpointError, match="fitted for other weights") as refused:
        load_attribute_directions(folder)
    assert "python -m explorer.attributes my-vae" in str(refused.value) and str(tmp_path) not in str(refused.value)
    model = shipped("vae-mnist")
    model.checkpoint_path = folder  # a model loaded from that folder: no silent edit along the wrong directions
    with pytest.raises(CheckpointError, match="fitted for other weights"):
        directions_for(model)


def test_directions_without_a_weights_hash_are_refused(tmp_path):
    folder = tmp_path / "old-vae"
    shutil.copytree(CHECKPOINTS_DIR / "vae-mnist", folder)
    record = json.loads((folder / "attributes.json").read_text())
    del record["weights_sha256"]  # as written before the hash was recorded
    (folder / "attributes.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="do not say which weights.*python -m explorer.attributes old-vae"):
        load_attribute_directions(folder)
    unhashed = fit_directions(tiny_model("vae"), samples=60, calibration=4)  # a model built in memory
    with pytest.raises(ValueError, match="not loaded from a checkpoint"):
        save_attribute_directions(unhashed, folder)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_ships_named_directions(name):
    model = shipped(name)
    if not model.smooth_latent:  # PixelCNN, RBM: nothing to edit along, and edit() says so
        with pytest.raises(ValueError, match="sampling noise"):
            explorer.edit(model, model.sample_latent(1), {"thickness": 1.0})
        return
    directions = load_attribute_directions(model.checkpoint_path)
    assert directions is not None, f"run python -m explorer.attributes {name}"
    assert directions.vectors.shape[1:] == model.latent_shape
    assert {"thickness", "slant", "width", "height", "digit 7"} <= set(directions.names)


# --- edits ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vae():
    return shipped("vae-mnist")


def test_zero_edit_is_the_identity_and_steps_are_calibrated(vae):
    directions = directions_for(vae)
    z = vae.sample_latent(4, seed=3)
    assert torch.equal(edit(vae, z, {"thickness": 0.0}), z)
    moved = edit(vae, z, {"slant": 1.5}) - z  # step 3: a lone edit is its calibrated step, uncorrected
    expected = 1.5 * directions.step[directions.index("slant")] * directions.vectors[directions.index("slant")]
    assert torch.allclose(moved, expected.expand_as(moved), atol=1e-5)


def test_edits_and_locks_are_solved_together_in_the_linear_model(vae):
    """Step 2's definition: with two edits and a lock, and no measured correction, every edited direction's
    projection of the move is its amount times its step and the locked one's is zero, all at once (adding each
    edit on its own, as before, let width's move carry thickness off its amount)."""
    directions = directions_for(vae)
    z = vae.sample_latent(1, seed=3)
    amounts = {"thickness": 2.0, "width": -2.0}
    delta = (edit(vae, z, amounts, lock=("slant",), refine=0) - z).flatten().double()
    vectors = {n: directions.vectors[directions.index(n)].flatten().double() for n in ("thickness", "width", "slant")}
    for name, amount in amounts.items():
        assert float(vectors[name] @ delta) == pytest.approx(amount * float(directions.step[directions.index(name)]), rel=1e-4)
    assert abs(float(vectors["slant"] @ delta)) < 1e-5
    one_at_a_time = sum(edit(vae, z, {n: a}, lock=("slant",), refine=0) - z for n, a in amounts.items()).flatten().double()
    off = abs(float(vectors["thickness"] @ one_at_a_time) / (2.0 * float(directions.step[directions.index("thickness")])) - 1)
    assert off > 0.1  # the old way misses the amount in the very model it is built on: the case being fixed


@pytest.mark.parametrize("name", ["vae-mnist", "dcgan-mnist"])
def test_a_combined_edit_keeps_each_slider_near_its_amount(name):
    """The issue's case, thickness +2 and width -2 with slant locked, over 20 random latents: adding each edit
    on its own measured thickness -0.25 sd (dcgan-mnist) and +0.35 (vae-mnist); solved together it measured
    +0.98 and +0.97 here (the decoders draw few digits that thick and that narrow, so +2 is not reached: the
    readout flags that), with width -1.17 and -0.79 and slant within 0.1 sd on average. At +-1 each reaches
    +0.71 to +1.0 of its amount. The floors leave a margin of about 0.3 sd."""
    model = shipped(name)
    directions = directions_for(model)
    z = model.sample_latent(20, seed=7, temperature=model.default_temperature)
    before = morphometrics(model.decode(z))
    after = morphometrics(model.decode(edit(model, z, {"thickness": 2.0, "width": -2.0}, lock=("slant",))))
    change = {n: float(np.mean(after[n] - before[n])) / directions.record["attributes"][n]["sd"] for n in ("thickness", "width", "slant")}
    assert change["thickness"] >= 0.65 and change["width"] <= -0.5 and abs(change["slant"]) <= 0.3, change


def test_a_lock_removes_the_locked_directions_and_keeps_the_edit_size(vae):
    directions = directions_for(vae)
    z = vae.sample_latent(1, seed=3)
    delta = (edit(vae, z, {"thickness": 2.0}, lock=("slant", "width"), refine=0) - z).flatten()
    for locked in ("slant", "width"):
        assert abs(float(delta @ directions.vectors[directions.index(locked)].flatten())) < 1e-4
    thickness = directions.vectors[directions.index("thickness")].flatten()
    assert float(delta @ thickness) == pytest.approx(2.0 * float(directions.step[directions.index("thickness")]), rel=1e-4)


def test_keeping_the_digit_holds_it_where_a_plain_edit_loses_it_and_the_edit_still_happens(vae):
    directions = directions_for(vae)
    z = vae.sample_latent(60, seed=11)
    before = measure(vae.decode(z))
    plain = measure(vae.decode(edit(vae, z, {"width": 2.0}, directions=directions)))
    kept = measure(vae.decode(edit(vae, z, {"width": 2.0}, lock=("digit",), directions=directions)))
    flipped = plain["digit"] != before["digit"]
    assert flipped.sum() >= 5  # the case the hold is for happens here
    assert (kept["digit"] == before["digit"]).mean() >= 0.95
    width_sd = directions.record["attributes"]["width"]["sd"]
    assert np.median(kept["width"] - before["width"]) / width_sd > 1.0  # the digit is held, the edit not undone


def test_the_digit_hold_leaves_locked_attributes_locked(vae):
    directions = directions_for(vae)
    z = vae.sample_latent(1, seed=3)
    other = (int(measure(vae.decode(z))["digit"][0]) + 1) % 10  # a digit it does not read as: the hold must act
    delta = (edit(vae, z, {"width": 2.0}, lock=("slant", f"digit {other}"), refine=0) - z).flatten()
    assert abs(float(delta @ directions.vectors[directions.index("slant")].flatten())) < 1e-4


@pytest.mark.parametrize("amounts, lock, message", [
    ({"charisma": 1.0}, (), "unknown attribute"), ({"thickness": float("nan")}, (), "finite"),
    ({"thickness": 1.0}, ("thickness",), "both edited and locked"), ({"thickness": 1.0}, ("mood",), "unknown attribute"),
    ({"area": 1.0}, ("thickness", "width", "height", "slant", "digit 0", "digit 1", "digit 2", "digit 3", "digit 4",
                     "digit 5", "digit 6", "digit 7", "digit 8", "digit 9"), "nearly coincide"),
])
def test_bad_edits_are_refused(vae, amounts, lock, message):
    with pytest.raises(ValueError, match=message):
        edit(vae, vae.sample_latent(1), amounts, lock=lock)


def spearman_with_amounts(values: np.ndarray) -> np.ndarray:
    ranks = values.argsort(1).argsort(1).astype(float)
    a = ranks - ranks.mean(1, keepdims=True)
    b = np.arange(values.shape[1]) - (values.shape[1] - 1) / 2
    return (a @ b) / np.sqrt((a**2).sum(1) * (b**2).sum())


def test_vae_sliders_do_what_they_say_and_the_slant_lock_holds(vae):
    """The issue's criteria on the VAE, over 40 random latents: monotone in the amount, +1 about one standard
    deviation, and slant held within 0.3 of its standard deviation under a thickness edit of +2."""
    directions = directions_for(vae)
    z = vae.sample_latent(40, seed=99)
    base = morphometrics(vae.decode(z))
    for name in ("thickness", "slant", "width"):
        values = np.stack([morphometrics(vae.decode(edit(vae, z, {name: a})))[name] for a in (-2, -1, 0, 1, 2)], 1)
        assert np.median(spearman_with_amounts(values)) >= 0.9, name
        per_sd = (values[:, 3] - values[:, 2]).mean() / directions.record["attributes"][name]["sd"]
        assert 0.5 <= per_sd <= 1.5, (name, per_sd)
    slant_sd = directions.record["attributes"]["slant"]["sd"]
    locked = morphometrics(vae.decode(edit(vae, z, {"thickness": 2.0}, lock=("slant",))))["slant"]
    assert np.abs(locked - base["slant"]).mean() / slant_sd <= 0.3


# --- signed steps and bounded locks (issue 14) ------------------------------------------------------------------

def test_plus_one_moves_the_attribute_up_where_the_decoder_moves_it_against_its_direction():
    """ae2d-mnist's width direction, as fitted, narrows the digit (measured slope -0.67 px per latent unit): its
    step is negative, so +1 widens. Measured over these 40 latents: +1 moves width +1.37 sd (97.5% of them
    wider), -1 moves it -0.80 sd; the unsigned step it had before moved +1 by -0.21 sd."""
    model = shipped("ae2d-mnist")
    directions = directions_for(model)
    fit = directions.record["attributes"]["width"]
    assert fit["measured_slope"] < 0 and float(directions.step[directions.index("width")]) < 0
    z = model.sample_latent(40, seed=99, temperature=model.default_temperature)
    before = morphometrics(model.decode(z))["width"]
    for amount in (1.0, -1.0):
        change = (morphometrics(model.decode(edit(model, z, {"width": amount})))["width"] - before) / fit["sd"]
        assert 0.5 <= amount * change.mean() <= 1.5 and (amount * change > 0).mean() >= 0.8, (amount, change.mean())


def test_a_lock_the_fit_could_not_calibrate_takes_no_newton_step():
    """ae2d-mnist's thickness and digit 8 slopes are within their noise (t = -0.28 and 0.95): locking them
    keeps the projection of step 1 and takes no step 4 along them, whatever step 4 does for the edit itself."""
    model = shipped("ae2d-mnist")
    directions = directions_for(model)
    z = model.sample_latent(4, seed=99, temperature=model.default_temperature)
    for amounts, lock in (({"width": 2.0}, "thickness"), ({"slant": 2.0}, "digit 8")):
        assert not directions.record["attributes"][lock]["calibrated"]
        assert torch.equal(edit(model, z, amounts, lock=(lock,)), edit(model, z, amounts, lock=(lock,), refine=0))



def test_an_uncalibrated_lock_is_held_by_the_projection_while_step_4_corrects_the_others(vae):
    """vae-mnist's directions with thickness marked uncalibrated: with width and slant edited, step 4 runs (the
    result differs from refine=0) and its corrections leave the locked direction untouched."""
    import copy

    directions = copy.deepcopy(directions_for(vae))
    directions.record["attributes"]["thickness"]["calibrated"] = False
    z = vae.sample_latent(4, seed=99)
    amounts = {"width": 1.0, "slant": 1.0}
    refined = edit(vae, z, amounts, lock=("thickness",), directions=directions) - z
    assert not torch.allclose(refined, edit(vae, z, amounts, lock=("thickness",), directions=directions, refine=0) - z)
    vector = directions.vectors[directions.index("thickness")].flatten()
    assert (refined.flatten(1) @ vector).abs().max() < 1e-4


# Measured on the shipped models with these latents (seed 5; 4 per model, 1 for diffusion, each edited alone):
# the edited latent moved at most 0.76 of 2 ||delta|| + hold before edits were solved together (vae2d-mnist,
# ae2d-mnist; 0.71 elsewhere, where the lock's bounded correction stands at right angles to the edit), and at most 5.34 times |amount * step| + hold
# (cvae-mnist, thickness -2 with height locked: the lock leaves a third of the direction, so ||delta|| is 3x
# longer, and since edits and locks are solved together step 4 corrects the edited row too; 3.4 before); the unbounded corrections before the fix moved z by 2.4e7 (ae2d-mnist, width locked) and 2.2e7
# (vae2d-mnist, digit locked), where a typical latent's norm is 1.2 to 28.
STEP_MULTIPLE = 6.0


@pytest.mark.parametrize("name", SMOOTH)
def test_a_lock_never_throws_the_latent_far(name):
    """Every slider at +-2 with each other slider locked in turn, and with the digit kept: the edited latent is
    finite and within 2 ||delta|| + hold of z (delta the projected edit of step 3, hold the longest walk of step 5),
    and within STEP_MULTIPLE times |amount * step| + hold."""
    model = shipped(name)
    directions = directions_for(model)
    z = model.sample_latent(1 if model.family == "diffusion" else 4, seed=5, temperature=model.default_temperature)
    digits = measure(model.decode(z))["digit"]
    steps = [abs(float(directions.step[directions.index(s)])) for s in SLIDERS]
    hold = HOLD_STEPS * HOLD_STEP_SD * float(np.median(steps))
    vectors = directions.vectors.flatten(1).double()
    checked = 0
    for slider in SLIDERS:
        size = 2.0 * abs(float(directions.step[directions.index(slider)]))
        for amount in (-2.0, 2.0):
            for lock in [(other,) for other in SLIDERS if other != slider] + [("digit",)]:
                # a slider lock projects every latent the same way, so they go together; the digit lock holds
                # each latent's own digit, and may be refused for one digit and not another, so one at a time
                for rows in ([slice(None)] if lock != ("digit",) else [slice(i, i + 1) for i in range(len(z))]):
                    try:
                        edited = edit(model, z[rows], {slider: amount}, lock=lock, directions=directions)
                    except ValueError as error:  # a 2-D latent has little room left once one direction is locked
                        assert "nearly coincide" in str(error)
                        continue
                    assert torch.isfinite(edited).all()
                    for moved, digit in zip((edited - z[rows]).flatten(1).norm(dim=1).tolist(), digits[rows]):
                        locked = lock if lock != ("digit",) else (f"digit {digit}",)
                        basis = torch.linalg.qr(vectors[[directions.index(n) for n in locked]].T).Q
                        direction = vectors[directions.index(slider)]
                        delta = size / float((direction - basis @ (basis.T @ direction)).norm())  # step 3's length
                        walk = hold if lock == ("digit",) else 0.0
                        assert moved <= 2 * delta * (1 + 1e-4) + walk, (slider, amount, lock, moved, delta)
                        assert moved <= STEP_MULTIPLE * size + walk, (slider, amount, lock, moved, size)
                        checked += 1
    assert checked >= 6 * len(z)  # not vacuous: vae2d-mnist, the most refused, edits 24 of its 128 (latent, edit) pairs


# --- the classifier runs where the images are --------------------------------------------------------------------

@pytest.fixture
def asked(monkeypatch):
    """The devices the classifier is asked for, with a GPU that seems present: a request that leaves the device
    to the classifier (None) would try to put it there."""
    requests = []

    def spy(device=None):
        requests.append(device)
        return load_classifier(device)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(explorer.attributes, "load_classifier", spy)
    monkeypatch.setattr(explorer.metrics, "load_classifier", spy)
    return requests


def test_the_classifier_is_one_instance_per_device_however_the_device_is_named():
    assert load_classifier("cpu") is load_classifier(torch.device("cpu"))


def test_measure_edit_and_encode_use_the_classifier_on_the_models_device(asked, vae):
    images = vae.decode(vae.sample_latent(4, seed=0))
    assert images.device.type == "cpu"
    measure(images)
    measure(images.numpy())
    edit(vae, vae.sample_latent(2, seed=1), {"width": 2.0}, lock=("digit",))
    shipped("cvae-mnist").encode(images)
    assert asked and all(torch.device(device) == torch.device("cpu") for device in asked), asked
    assert next(load_classifier(asked[0]).parameters()).device.type == "cpu"


def test_table_columns_match_the_full_table_and_skip_the_classifier_for_morphometrics(digits, monkeypatch):
    """The digits' table: the five morphometrics, then each digit's log-odds by the definition (log p - log(1 - p)
    of the classifier's probabilities); asked for morphometric columns alone, the classifier never runs."""
    from explorer import attributes

    images, _ = digits
    table = attributes.DIGIT_MEASURES
    figures = attributes.measure(images)
    probs = np.clip(figures["probs"], 1e-6, 1 - 1e-6)
    full = np.concatenate([np.stack([figures[a] for a in attributes.ATTRIBUTES], 1), np.log(probs / (1 - probs))], 1)
    assert np.allclose(table.table(images), full)
    columns = [0, 1, 3]
    monkeypatch.setattr(type(table), "probabilities", lambda *a: pytest.fail("the classifier ran for morphometrics"))
    assert np.array_equal(table.table(images, columns=columns), full[:, columns])
    monkeypatch.undo()
    with_digit = [1, len(attributes.ATTRIBUTES) + 4]
    assert np.allclose(table.table(images, columns=with_digit), full[:, with_digit])


def test_circular_measures_differ_the_short_way_round_and_centre_on_their_circular_mean():
    from explorer.attributes import Measures

    hue = Measures(("hue", "size"), {"hue": "deg", "size": "px"}, ("hue", "size"), lambda x: {}, circular={"hue": 360.0})
    assert np.allclose(hue.difference([[350.0, 5.0]], [[10.0, 1.0]]), [[-20.0, 4.0]])
    assert np.allclose(hue.difference([[10.0]], [[350.0]], [0]), [[20.0]])
    table = np.array([[350.0, 1.0], [10.0, 2.0], [0.0, 3.0]])  # circular mean 0, where the plain mean says 120
    assert np.allclose(hue.centred(table), [[-10.0, 1.0], [10.0, 2.0], [0.0, 3.0]])


def test_a_model_of_known_factors_gets_generic_directions_along_them():
    """The adapter example examples/coloured_square.py, whose brightness follows z[0], its square's x position
    z[1] and its hue z[2], opened without a domain: the generic measures' directions point along those
    coordinates, a measure that never varies (the centre's height) gets none, and an edit of one, with another
    locked, moves it by about the asked SDs."""
    from explorer.attributes import measures_of
    from explorer.domains.generic import measure
    from explorer.open import load_model

    model = load_model(f"{ROOT / 'examples' / 'coloured_square.py'}:make", "cpu")
    directions = fit_directions(model, samples=600, calibration=40)
    fits = directions.record["attributes"]
    for name, axis in (("brightness", 0), ("centre x", 1), ("hue", 2)):
        vector = directions.vectors[directions.index(name)]
        assert abs(float(vector[axis])) > 0.9, (name, vector)  # measured: 0.99, 1.00, 1.00
        assert fits[name]["calibrated"]
    assert not fits["centre y"]["fitted"] and float(directions.step[directions.index("centre y")]) == 0
    measures = measures_of(model)
    z = model.sample_latent(20, seed=5)
    before = measure(model.decode(z))
    for name, lock in (("centre x", "brightness"), ("hue", "centre x")):
        after = measure(model.decode(edit(model, z, {name: 1.0}, lock=[lock], directions=directions)))
        moved = {n: np.median(measures.difference(after[n][:, None], before[n][:, None], [measures.names.index(n)]))
                 / fits[n]["sd"] for n in (name, lock)}
        assert 0.7 < moved[name] < 1.3 and abs(moved[lock]) < 0.2, moved  # measured: 1.00 and 0.00 both times
    with pytest.raises(ValueError, match="no classes"):
        edit(model, z, {"hue": 1.0}, lock=["digit"], directions=directions)
