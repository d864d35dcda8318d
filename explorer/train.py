"""Train a model family on the digits: `python -m explorer.train FAMILY --name NAME [options]`.

On several processes (one per GPU, or CPU processes), under torchrun:
`torchrun --standalone --nproc_per_node N -m explorer.train FAMILY --name NAME ...` trains with PyTorch's
DistributedDataParallel (NCCL on GPUs, gloo on the CPU). Every process draws the same seeded global batch and
takes its own share (rows rank, rank + N, ...); DDP averages the shares' gradients, which is the whole batch's
mean gradient, so N processes give the weights one process gives on the same global batches (to float rounding;
exactly so for a loss that draws no noise: each process draws its own noise, seeded by (seed, step, rank)).
A family with its own training step (the GAN's critic and generator steps) has each optimiser average the
processes' gradients before it steps instead; its noise and its batch-norm statistics are each process's own, so
it trains as one process would in distribution, not weight for weight. Rank 0 alone writes the checkpoint, the
state and the progress grids.

Shows a progress bar, writes sample grids to runs/NAME/progress/ as it goes, saves its training state
to runs/NAME/state/ (safetensors + JSON) and a loadable checkpoint to checkpoints/NAME every
--save-every steps. Run the same command again to resume: every random draw is seeded from (seed, step),
so a resumed run continues exactly as an uninterrupted one would. The checkpoint's config.json records the
command, the dataset, the step count and the seed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from .base import LatentModel, Trainable, pick_device
from .checkpoint import (CHECKPOINTS_DIR, SAMPLES_FILE, WEIGHTS_FILE, build_model, load_state, save_checkpoint,
                         save_state, weights_sha256)
from .data import image_grid, load_dataset, to_tensor
from .latent import DIRECTIONS_FILE
from .models import FAMILIES, model_class

RUNS_DIR = Path(__file__).resolve().parent.parent / "runs"


def parse_value(text: str):
    """--set values are JSON where they parse as JSON (numbers, lists, true), else plain strings."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % (2**63)


class EMA:
    """Exponential moving average of a model's weights (Polyak averaging); buffers are copied as they are."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # warm-up: early weights are not worth keeping
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)


def batches(n_items: int, batch_size: int, seed: int, start_step: int):
    """Yield (step, index array) forever; epoch e is a permutation seeded by (seed, e), so resuming at any
    step draws the same batches as an unbroken run."""
    per_epoch = n_items // batch_size
    if per_epoch == 0:
        raise ValueError(f"{n_items} items make no batch of {batch_size}")
    step = start_step
    while True:
        epoch, within = divmod(step, per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(n_items)
        for i in range(within, per_epoch):
            yield step, order[i * batch_size : (i + 1) * batch_size]
            step += 1


def join_processes(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, this process's device) from torchrun's environment, joining the process group when
    there are several processes; (0, 1, device) for a plain run."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":  # one GPU per process
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


class LossOf(nn.Module):
    """A model's loss as a module's forward: DistributedDataParallel synchronises the gradients of what runs
    through its wrapper's forward, and the families' one training step computes its loss with `self.loss`."""

    def __init__(self, model: Trainable) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch):
        return type(self.model).loss(self.model, batch)


def average_gradients_before_each_step(optimizers: list[torch.optim.Optimizer]) -> None:
    """Before every step of each optimiser, replace its parameters' gradients by their mean over the processes:
    what DistributedDataParallel's backward does, for a family whose own training step runs several losses and
    optimisers (a GAN's critic and generator steps, WGAN-GP's double backward), which one DDP wrapper cannot
    follow. Every process runs the same steps on the same parameters, so the collectives line up."""
    def average(optimizer, args, kwargs) -> None:
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    dist.all_reduce(parameter.grad)
                    parameter.grad.div_(dist.get_world_size())

    for optimizer in optimizers:
        optimizer.register_step_pre_hook(average)


def distribute(model: Trainable, device: torch.device, optimizers: list[torch.optim.Optimizer]) -> None:
    """Average every process's gradients: for the families' one default training step, by routing `model.loss`
    through DistributedDataParallel (the wrapper is set past nn.Module's registry, object.__setattr__: it must
    not become a submodule, or the checkpoint would hold the weights twice); for a family with its own step, by
    averaging before each optimiser step. Batch-norm statistics stay each process's own (of its share), and
    rank 0's are saved."""
    if type(model).training_step is not Trainable.training_step:
        average_gradients_before_each_step(optimizers)
        return
    wrapped = nn.parallel.DistributedDataParallel(LossOf(model), device_ids=[device] if device.type == "cuda" else None)
    object.__setattr__(model, "loss", wrapped)


def remove_fitted_files(folder: Path) -> None:
    """Remove the attribute and principal directions beside a checkpoint whose weights just changed: they were
    fitted for the old weights (loading would refuse them anyway, by their weights hash); say so, and what to
    run to fit them again."""
    from .attributes import ATTRIBUTES_FILE, ATTRIBUTES_RECORD  # here: training needs no scipy or scikit-image

    removed = [name for name in (ATTRIBUTES_FILE, ATTRIBUTES_RECORD, DIRECTIONS_FILE) if (folder / name).is_file()]
    for name in removed:
        (folder / name).unlink()
    if removed:
        print(f"removed {', '.join(removed)} from {folder.name}: fitted for the weights this training replaced; "
              f"refit with python -m explorer.attributes {folder.name} and python -m explorer.latent {folder.name}",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> Path:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m explorer.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("family", choices=sorted(FAMILIES))
    parser.add_argument("--name", required=True, help="checkpoint name: written to checkpoints/NAME")
    parser.add_argument("--out", type=Path, default=None, help="checkpoint folder (default checkpoints/NAME)")
    parser.add_argument("--data", default="mnist", help="'mnist' or a folder of images (subfolders 0-9 give labels)")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the family's)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decay-from", type=int, default=None, metavar="STEP",
                        help="from this step on, lower the learning rate linearly to zero at --steps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--sample-every", type=int, default=1000)
    parser.add_argument("--run-dir", type=Path, default=None, help="training state and progress grids (default runs/NAME)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--fresh", action="store_true", help="ignore saved state and start again")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    cls = model_class(args.family)
    defaults = dict(cls.train_defaults)
    steps = args.steps or defaults["steps"]
    batch_size = args.batch_size or defaults["batch_size"]
    lr = args.lr or defaults["lr"]
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = parse_value(value)
    config = dataclasses.asdict(cls.config_class(**overrides))
    rank, world, device = join_processes(pick_device(args.device))
    if batch_size % world:
        raise SystemExit(f"--batch-size {batch_size} does not split into {world} equal shares, one per process")
    out = args.out or CHECKPOINTS_DIR / args.name
    run_dir = args.run_dir or RUNS_DIR / args.name
    if rank == 0:
        (run_dir / "progress").mkdir(parents=True, exist_ok=True)

    dataset = load_dataset(args.data, "train")
    if len(dataset) < batch_size:  # batches() draws whole batches only: an epoch would hold none
        raise SystemExit(f"--data {args.data} has {len(dataset)} training images, fewer than one batch of "
                         f"{batch_size}: add images, or pass a smaller --batch-size (at most {len(dataset)})")
    images = to_tensor(dataset.images).to(device)
    labels = torch.from_numpy(dataset.labels).to(device)
    torch.manual_seed(args.seed)
    model = build_model(args.family, config).to(device)
    if hasattr(model, "initialise_from_data"):  # data-dependent init (e.g. ActNorm), seeded like the rest
        with torch.no_grad():
            model.initialise_from_data(images[torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))[:512].cpu()])
    optimizers = model.make_optimizers(lr)
    base_lrs = [[group["lr"] for group in optimizer.param_groups] for optimizer in optimizers]
    ema_decay = getattr(model.config, "ema_decay", 0.0)
    ema = EMA(model, ema_decay) if ema_decay > 0 else None
    start, elapsed = 0, 0.0
    state = None if args.fresh else load_state(run_dir / "state")
    if state is not None:
        # configs match when they build the same dataclass: a field added since the run began takes its default
        saved_config = dataclasses.asdict(cls.config_class(**state["config"])) if state["family"] == args.family else None
        if json.loads(json.dumps(saved_config)) != json.loads(json.dumps(config)):
            raise SystemExit(f"{run_dir}/state was made with another family or config; use --fresh or another --name")
        model.load_state_dict(state["model"])
        for optimizer, saved in zip(optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved)
        if ema is not None:
            ema.model.load_state_dict(state["ema"])
        start, elapsed = int(state["step"]), float(state["elapsed_s"])
        if rank == 0:
            print(f"resuming {args.name} at step {start}", file=sys.stderr)
    if world > 1:
        distribute(model, device, optimizers)  # after the EMA's copy and the state's load: both see the bare model

    if args.decay_from is not None and not 0 <= args.decay_from < steps:
        raise SystemExit(f"--decay-from must be a step before --steps ({steps}), got {args.decay_from}")

    def lr_factor(step: int) -> float:
        """Linear warm-up, then constant, then (with --decay-from) a linear fall to zero at the last step:
        annealing the rate at the end settles the weights into a sharper optimum than a constant rate."""
        warmup = min(1.0, (step + 1) / defaults.get("warmup", 1))
        if args.decay_from is None or step < args.decay_from:
            return warmup
        return warmup * (steps - step) / (steps - args.decay_from)

    launcher = f"torchrun --standalone --nproc_per_node {world} -m" if world > 1 else "python -m"
    command = f"{launcher} explorer.train " + shlex.join(argv)
    preview_latent = model.sample_latent(64, seed=args.seed) if isinstance(model, LatentModel) else None

    def save(step: int) -> None:
        if rank != 0:  # one writer
            return
        save_state(run_dir / "state", {
            "family": args.family, "config": config, "step": step, "elapsed_s": elapsed,
            "model": model.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
            **({"ema": ema.model.state_dict()} if ema is not None else {}),
        })
        final = ema.model if ema is not None else model
        before = weights_sha256(out) if (out / WEIGHTS_FILE).is_file() else None
        training = {"command": command, "dataset": dataset.source, "domain": dataset.domain,
                    "train_images": len(dataset), "steps": step,
                    "target_steps": steps, "batch_size": batch_size, "lr": lr, "lr_decay_from": args.decay_from,
                    "seed": args.seed, "processes": world,
                    "ema_decay": ema_decay, "device": str(device), "train_time_s": round(elapsed, 1),
                    "torch": torch.__version__}
        save_checkpoint(final, out, args.family, training)
        if weights_sha256(out) != before:
            remove_fitted_files(out)

    def preview(step: int) -> None:
        if preview_latent is None or rank != 0:
            return
        final = (ema.model if ema is not None else model).eval()
        grid = image_grid(final.decode(preview_latent), ncols=8, scale=2)
        grid.save(run_dir / "progress" / f"step_{step:06d}.png")
        out.mkdir(parents=True, exist_ok=True)
        grid.save(out / SAMPLES_FILE)
        model.train()

    model.train()
    progress = tqdm(total=steps, initial=start, desc=f"{args.family}:{args.name}", dynamic_ncols=True, mininterval=5,
                    disable=rank != 0)
    for step, index in batches(len(images), batch_size, args.seed, start):
        if step >= steps:
            break
        torch.manual_seed(step_seed(args.seed, step) + rank)  # each process its own noise; rank 0 a plain run's
        began = time.perf_counter()
        for optimizer, lrs in zip(optimizers, base_lrs):
            for group, base_lr in zip(optimizer.param_groups, lrs):
                group["lr"] = base_lr * lr_factor(step)
        index = index[rank::world]  # this process's share of the global batch
        x = images[index]
        logs = model.training_step((x, labels[index]) if model.needs_labels else x, optimizers)
        if ema is not None:
            ema.update(model, step)
        elapsed += time.perf_counter() - began
        progress.update(1)
        progress.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
        done = step + 1
        if done % args.save_every == 0 or done == steps:
            save(done)
        if done % args.sample_every == 0 or done == steps:
            preview(done)
    progress.close()
    if world > 1:
        dist.barrier()  # rank 0's last save is done before any process leaves
        dist.destroy_process_group()
    if start >= steps:  # nothing to train: rewrite the checkpoint so its record names this exact command
        print(f"{args.name} already trained for {start} steps; checkpoint record refreshed", file=sys.stderr)
        save(start)
    return out


if __name__ == "__main__":
    main()
