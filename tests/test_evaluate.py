from __future__ import annotations

import json

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
    table = capsys.readouterr().out
    assert "| real data (train vs held-out) | data |" in table and "tiny-flow" in table


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
