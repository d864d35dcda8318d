from __future__ import annotations

import json

import pytest

from explorer.checkpoint import save_checkpoint
from explorer.data import load_mnist, to_tensor
from explorer.evaluate import main as evaluate

from conftest import tiny_model


def test_evaluate_reports_and_records_figures(tmp_path, capsys):
    model = tiny_model("flow")
    folder = save_checkpoint(model, tmp_path / "tiny-flow", "flow", {"command": "test"})
    floor, row = evaluate([str(folder), "--samples", "60", "--write"])
    assert floor["family"] == "data" and floor["fid"] > 0
    assert row["fid"] > floor["fid"]  # an untrained flow is far from the digits
    assert 0 < row["confidence"] <= 1 and abs(sum(row["class_shares"]) - 1) < 1e-6
    assert row["heldout_bits_per_dim"] > 0 and row["sampling_ms_per_image"] > 0 and row["temperature"] == model.default_temperature == 1.0
    metrics = json.loads((folder / "config.json").read_text())["metrics"]
    assert metrics["fid"] == row["fid"] and metrics["real_data_floor_fid"] == floor["fid"] and metrics["samples"] == 60
    split = row["inception_score_splits"]
    assert split["splits"] == 10 and 1 <= split["mean"] <= 10 and split["sd"] >= 0
    table = capsys.readouterr().out
    assert "| real data (train vs held-out) | data |" in table and "tiny-flow" in table
    assert f"{row['inception_score']:.2f}; {split['mean']:.2f} ± {split['sd']:.2f}" in table


def test_rbm_rows_report_free_energies(tmp_path, capsys):
    model = tiny_model("rbm")
    folder = save_checkpoint(model, tmp_path / "tiny-rbm", "rbm", {"command": "test"})
    _, row = evaluate([str(folder), "--samples", "20"])
    assert "heldout_bits_per_dim" not in row  # no likelihood without the partition function
    figures = [row["free_energy_heldout"], row["free_energy_train"], row["free_energy_samples"]]
    assert all(isinstance(f, float) and f == f for f in figures)
    expected = float(model.image_free_energy(to_tensor(load_mnist("heldout").images)).mean())
    assert abs(row["free_energy_heldout"] - expected) < 0.01
    assert f"{row['free_energy_heldout']:.1f} / {row['free_energy_train']:.1f}" in capsys.readouterr().out


def test_repeats_report_the_ratio_spread_over_seeds(tmp_path, capsys):
    model = tiny_model("gan")
    folder = save_checkpoint(model, tmp_path / "tiny-gan", "gan", {"command": "test"})
    floor, row = evaluate([str(folder), "--samples", "40", "--seed", "3", "--repeats", "3"])
    spread = row["fid_over_floor_repeats"]
    assert spread["seeds"] == [3, 4, 5] and len(spread["ratios"]) == 3
    assert abs(spread["ratios"][0] - row["fid"] / floor["fid"]) < 1e-3  # the first seed is the table's own draw
    assert len(set(spread["ratios"])) == 3 and spread["sd"] > 0  # other seeds draw other samples and floors
    assert min(spread["ratios"]) <= spread["mean"] <= max(spread["ratios"])
    assert f"{spread['mean']:.1f}x +- {spread['sd']:.1f} over 3 seeds" in capsys.readouterr().out


def test_bad_arguments_stop_with_a_message(tmp_path, capsys):
    folder = save_checkpoint(tiny_model("gan"), tmp_path / "tiny-gan", "gan", {"command": "test"})
    for bad in (["--repeats", "0"], ["--samples", "1"]):
        with pytest.raises(SystemExit) as stop:
            evaluate([str(folder), *bad])
        assert stop.value.code == 2 and bad[0] in capsys.readouterr().err
