from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

import explorer
from explorer.checkpoint import (CheckpointError, load_checkpoint, load_state, save_checkpoint, save_state,
                                 weights_sha256)

from conftest import SHIPPED, tiny_model


@pytest.fixture
def saved(tmp_path):
    return save_checkpoint(tiny_model("vae"), tmp_path / "vae", "vae", {"command": "test"})


def test_list_models_names_the_shipped_generative_checkpoints():
    names = explorer.list_models()
    assert set(SHIPPED) <= set(names) and "classifier-mnist" not in names
    assert "classifier-mnist" in explorer.checkpoint.list_models("all")


def test_unknown_name_lists_what_exists():
    with pytest.raises(CheckpointError, match=r"not a shipped model \(ae-mnist, .*vae-mnist"):
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-000001.safetensors", "state.json"]
    loaded = load_state(tmp_path)
    assert loaded["step"] == 7 and loaded["config"] == {"a": [1, 2]}
    assert all(torch.equal(v, loaded["model"][k]) for k, v in state["model"].items())
    fresh = model.make_optimizers(1e-3)[0]
    fresh.load_state_dict(loaded["optimizers"][0])
    for group_a, group_b in zip(fresh.state.values(), optimizer.state.values()):
        assert all(torch.equal(group_a[k], group_b[k]) for k in group_b)


def tensor_state(value: float) -> dict:
    return {"step": int(value), "model": {"w": torch.full((3, 2), value), "b": torch.arange(4.0) * value}}


def test_a_crash_before_the_commit_leaves_the_previous_state_loadable_and_intact(tmp_path, monkeypatch):
    save_state(tmp_path, tensor_state(1.0))
    replace = Path.replace

    def crash_at_commit(self, target):
        if Path(target).name == "state.json":  # the last replace, the commit point: the process dies here
            raise OSError("simulated crash")
        return replace(self, target)

    monkeypatch.setattr(Path, "replace", crash_at_commit)
    with pytest.raises(OSError, match="simulated crash"):
        save_state(tmp_path, tensor_state(2.0))  # same names and shapes, other values: a mixed pair would load
    monkeypatch.undo()
    loaded = load_state(tmp_path)
    assert loaded["step"] == 1
    assert torch.equal(loaded["model"]["w"], torch.full((3, 2), 1.0))
    assert torch.equal(loaded["model"]["b"], torch.arange(4.0))
    save_state(tmp_path, tensor_state(3.0))  # the next save commits, and clears the crashed attempt's file
    again = load_state(tmp_path)
    assert again["step"] == 3 and torch.equal(again["model"]["w"], torch.full((3, 2), 3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-000002.safetensors", "state.json"]


def test_state_in_the_layout_before_the_commit_file_still_loads_and_is_replaced(tmp_path):
    from safetensors.torch import save_file

    from explorer.checkpoint import _split

    tensors = {}
    (tmp_path / "state.json").write_text(json.dumps(_split(tensor_state(5.0), "s", tensors)))
    save_file(tensors, str(tmp_path / "state.safetensors"))
    loaded = load_state(tmp_path)
    assert loaded["step"] == 5 and torch.equal(loaded["model"]["w"], torch.full((3, 2), 5.0))
    save_state(tmp_path, tensor_state(6.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-000001.safetensors", "state.json"]
    assert load_state(tmp_path)["step"] == 6


def test_weights_hash_is_of_the_file_and_survives_saving_the_same_weights_again(saved, tmp_path):
    assert weights_sha256(saved) == hashlib.sha256((saved / "model.safetensors").read_bytes()).hexdigest()
    model = load_checkpoint(saved, "cpu")
    again = save_checkpoint(model, tmp_path / "again", "vae")
    assert weights_sha256(again) == weights_sha256(saved)  # what training relies on to keep valid directions
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert weights_sha256(save_checkpoint(model, tmp_path / "again", "vae")) != weights_sha256(saved)
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        weights_sha256(tmp_path)
