"""Training on several processes (torchrun, DistributedDataParallel over gloo): two CPU processes, each
training on its half of every global batch, give the weights one process gives on the same batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
# the plain autoencoder draws no noise in its loss, so the two runs must agree to float rounding
TINY = ["autoencoder", "--steps", "2", "--batch-size", "16", "--threads", "1", "--save-every", "2",
        "--set", "latent_dim=3", "--set", "channels=[4, 8]", "--set", "hidden=16"]


def train(tmp_path: Path, name: str, processes: int, *extra: str) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "explorer.train"] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "explorer.train"]
    args = [*launcher, *TINY, *extra, "--name", name, "--out", str(tmp_path / name), "--run-dir", str(tmp_path / f"run-{name}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def mean_difference(a: dict, b: dict) -> float:
    """The mean absolute difference over every weight of two state dicts."""
    return float(torch.cat([(a[k] - b[k]).abs().flatten() for k in a]).mean())


def test_two_processes_give_one_process_weights(tmp_path):
    one, two = train(tmp_path, "one", 1), train(tmp_path, "two", 2)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = load_file(str(tmp_path / "one" / "model.safetensors")), load_file(str(tmp_path / "two" / "model.safetensors"))
    assert a.keys() == b.keys()  # the DDP wrapper is not saved inside the model
    # gloo sums the halves' gradients in another order than one process sums the batch. Adam's first steps are
    # about lr * sign(gradient), so a weight whose gradient is near zero can step differently (the largest
    # difference measured: 2.5e-5); the mean over all weights is what says the runs agree. Measured: 6.7e-9,
    # against 2.4e-6 for a process trained on half of each batch (the next test)
    assert mean_difference(a, b) < 1e-7, mean_difference(a, b)
    record = json.loads((tmp_path / "two" / "config.json").read_text())["training"]
    assert record["processes"] == 2 and record["command"].startswith("torchrun --standalone --nproc_per_node 2 -m")


def test_two_processes_differ_from_training_on_one_half(tmp_path):
    """The check above can fail: one process trained on half of each batch (what a process would do without
    the gradient averaging) ends elsewhere."""
    full, half = train(tmp_path, "full", 1), train(tmp_path, "half", 1, "--batch-size", "8")
    assert full.returncode == 0 and half.returncode == 0, half.stderr[-2000:]
    a, b = load_file(str(tmp_path / "full" / "model.safetensors")), load_file(str(tmp_path / "half" / "model.safetensors"))
    assert mean_difference(a, b) > 5e-7, mean_difference(a, b)


def test_a_batch_that_does_not_split_is_refused(tmp_path):
    result = train(tmp_path, "odd", 2, "--batch-size", "15")
    assert result.returncode != 0 and "does not split into 2 equal shares" in result.stderr


def average_then_step(rank: int, world: int, rendezvous: str, out: str) -> None:
    """One process of the test below: the same layer on every rank, rank r's gradient (r + 1) * ones."""
    import torch.distributed as dist

    from explorer.train import average_gradients_before_each_step

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    average_gradients_before_each_step([optimizer])
    for parameter in layer.parameters():
        parameter.grad = torch.full_like(parameter, rank + 1.0)
    optimizer.step()
    torch.save({k: v.detach() for k, v in layer.state_dict().items()}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_an_own_training_step_steps_on_the_processes_mean_gradient(tmp_path):
    """The GAN's path: each optimiser averages the processes' gradients before it steps, so every rank takes
    the same step, lr times the mean gradient (1 and 2 here: 1.5)."""
    torch.multiprocessing.spawn(average_then_step, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2)
    torch.manual_seed(0)
    start = torch.nn.Linear(3, 2).state_dict()
    for rank in range(2):
        stepped = torch.load(tmp_path / f"rank{rank}.pt")
        for key in start:
            torch.testing.assert_close(stepped[key], start[key] - 0.1 * 1.5)


def test_a_gan_trains_on_two_processes(tmp_path):
    """A GAN (its own step: critic and generator optimisers) and WGAN-GP (a double backward) train under torchrun."""
    for name, extra in (("gan", []), ("wgan", ["--set", "loss=wgan-gp", "--set", "n_critic=2"])):
        args = ["gan", "--steps", "2", "--batch-size", "16", "--threads", "1", "--save-every", "2",
                "--set", "latent_dim=8", "--set", "g_channels=8", "--set", "d_channels=4", *extra]
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    "-m", "explorer.train"]
        result = subprocess.run([*launcher, *args, "--name", name, "--out", str(tmp_path / name),
                                 "--run-dir", str(tmp_path / f"run-{name}")], cwd=ROOT, capture_output=True, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}, timeout=240)
        assert result.returncode == 0, result.stderr[-2000:]
        record = json.loads((tmp_path / name / "config.json").read_text())["training"]
        assert record["processes"] == 2 and record["steps"] == 2
