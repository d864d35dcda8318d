"""The training command end to end on a tiny model: it writes a loadable checkpoint that records how it was
made, and an interrupted run resumed from its state matches an unbroken run bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from explorer.checkpoint import load_checkpoint
from explorer.train import main as train

TINY = ["--set", "latent_dim=3", "--set", "channels=[4, 8]", "--set", "hidden=16", "--batch-size", "16", "--threads", "1"]


def run(tmp_path, name: str, steps: int, *extra: str):
    args = ["vae", "--name", name, "--out", str(tmp_path / name), "--run-dir", str(tmp_path / f"run-{name}"),
            "--steps", str(steps), "--save-every", "3", "--sample-every", "3", *TINY, *extra]
    train(args)
    return load_checkpoint(tmp_path / name, "cpu")


def test_checkpoint_records_how_it_was_made(tmp_path):
    model = run(tmp_path, "once", 3)
    record = json.loads((tmp_path / "once" / "config.json").read_text())
    assert record["training"]["command"].startswith("python -m explorer.train vae --name once")
    assert record["training"]["steps"] == 3 and record["training"]["seed"] == 0
    assert record["training"]["dataset"].startswith("mnist-shipped-14k:train")
    assert (tmp_path / "once" / "samples.png").is_file() and (tmp_path / "run-once" / "progress" / "step_000003.png").is_file()
    assert model.config.latent_dim == 3


def test_resumed_run_equals_unbroken_run(tmp_path):
    unbroken = run(tmp_path, "unbroken", 6)
    run(tmp_path, "resumed", 3)
    resumed = run(tmp_path, "resumed", 6)  # same folders: picks up the state saved at step 3
    assert json.loads((tmp_path / "resumed" / "config.json").read_text())["training"]["steps"] == 6
    a, b = unbroken.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_another_seed_gives_another_model(tmp_path):
    a = run(tmp_path, "seed0", 3).state_dict()
    b = run(tmp_path, "seed1", 3, "--seed", "1").state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_learning_rate_decay_is_applied_recorded_and_checked(tmp_path):
    plain = run(tmp_path, "plain", 6).state_dict()
    annealed = run(tmp_path, "annealed", 6, "--decay-from", "3").state_dict()  # rates x1, 2/3, 1/3 on the last three steps
    assert any(not torch.equal(plain[k], annealed[k]) for k in plain)
    assert json.loads((tmp_path / "annealed" / "config.json").read_text())["training"]["lr_decay_from"] == 3
    with pytest.raises(SystemExit, match="--decay-from must be a step before --steps"):
        run(tmp_path, "late", 3, "--decay-from", "3")


FITTED = ("attributes.json", "attributes.safetensors", "pca_directions.safetensors")


def test_retraining_removes_directions_fitted_for_the_old_weights_and_says_so(tmp_path, capsys):
    run(tmp_path, "re", 3)
    for name in FITTED:  # stand-ins: training must not read them, only know they belong to the old weights
        (tmp_path / "re" / name).write_text("fitted for the step-3 weights")
    capsys.readouterr()
    run(tmp_path, "re", 3)  # already trained: the checkpoint is rewritten with the same weights, so they stay
    assert all((tmp_path / "re" / name).is_file() for name in FITTED)
    assert "removed" not in capsys.readouterr().err
    run(tmp_path, "re", 3, "--fresh", "--seed", "1")  # other weights into the same folder
    assert not any((tmp_path / "re" / name).exists() for name in FITTED)
    err = capsys.readouterr().err
    assert "removed attributes.safetensors, attributes.json, pca_directions.safetensors from re" in err
    assert "python -m explorer.attributes re" in err and "python -m explorer.latent re" in err


def test_a_folder_with_fewer_images_than_one_batch_is_refused_clearly(tmp_path):
    from PIL import Image

    folder = tmp_path / "few" / "3"
    folder.mkdir(parents=True)
    for i in range(5):
        canvas = Image.new("L", (28, 28), 0)
        canvas.paste(255, (10 + i, 6, 16 + i, 22))  # a white bar: something prepare_digit can centre
        canvas.save(folder / f"{i}.png")
    with pytest.raises(SystemExit, match="has 5 training images, fewer than one batch of 16.*--batch-size"):
        run(tmp_path, "few", 3, "--data", str(tmp_path / "few"))
