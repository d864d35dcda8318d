from __future__ import annotations

import json
import shutil

import pytest
import torch

import explorer
from explorer.checkpoint import CheckpointError, load_checkpoint, load_state, save_checkpoint, save_state

from conftest import SHIPPED, tiny_model


@pytest.fixture
def saved(tmp_path):
    return save_checkpoint(tiny_model("vae"), tmp_path / "vae", "vae", {"command": "test"})


def test_list_models_names_the_shipped_generative_checkpoints():
    names = explorer.list_models()
    assert set(SHIPPED) <= set(names) and "classifier-mnist" not in names
    assert "classifier-mnist" in explorer.checkpoint.list_models("all")


def test_unknown_name_lists_what_exists():
    with pytest.raises(CheckpointError, match="known: .*vae-mnist"):
        explorer.load_model("no-such-model")


def test_corrupt_weights_are_reported(saved):
    (saved / "model.safetensors").write_bytes(b"\x00\x01 definitely not safetensors")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(saved)


def test_truncated_weights_are_reported(saved):
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(saved)


def test_corrupt_config_is_reported(saved):
    (saved / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(saved)


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(family="transformer"), "unknown model family"),
    (lambda r: r["config"].update(colour="blue"), "does not know: colour"),
    (lambda r: r["config"].update(latent_dim=9), "wrong shape"),
    (lambda r: r.pop("config"), "lacks"),
])
def test_mismatched_config_is_reported(saved, change, message):
    record = json.loads((saved / "config.json").read_text())
    change(record)
    (saved / "config.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(saved)


def test_weights_of_another_model_are_reported(saved, tmp_path):
    other = save_checkpoint(tiny_model("gan"), tmp_path / "gan", "gan")
    shutil.copy(other / "model.safetensors", saved / "model.safetensors")
    with pytest.raises(CheckpointError, match="does not match its config"):
        load_checkpoint(saved)


def test_training_state_round_trip(tmp_path):
    model = tiny_model("flow").train()
    optimizer = model.make_optimizers(1e-3)[0]
    model.training_step(torch.rand(4, 1, 28, 28), [optimizer])
    state = {"step": 7, "config": {"a": [1, 2]}, "model": model.state_dict(), "optimizers": [optimizer.state_dict()]}
    save_state(tmp_path, state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.safetensors"]
    loaded = load_state(tmp_path)
    assert loaded["step"] == 7 and loaded["config"] == {"a": [1, 2]}
    assert all(torch.equal(v, loaded["model"][k]) for k, v in state["model"].items())
    fresh = model.make_optimizers(1e-3)[0]
    fresh.load_state_dict(loaded["optimizers"][0])
    for group_a, group_b in zip(fresh.state.values(), optimizer.state.values()):
        assert all(torch.equal(group_a[k], group_b[k]) for k in group_b)
