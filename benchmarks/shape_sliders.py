"""Do the shapes world's sliders move the factor they name, and only it? `python benchmarks/shape_sliders.py [NAME ...]`

For each model of the shapes world (default: every shipped one; a pipeline folder such as checkpoints/ddpm-shapes
may be named too), over 40 random latents and amounts -2, -1, 0, +1, +2 of each factor's slider, with the
measurer (explorer.models.measurer) reading the factor back from each decoded image, prints per factor:

- "Spearman": the median over latents of the Spearman correlation between the amount and the measured factor
  (target at least 0.9), the slider alone;
- "locked": the same with every other factor locked;
- "others moved": with every other factor locked, at amounts -1 and +1, the largest over the other factors of
  the median over latents of |change| in standard deviations of that factor over the model's samples
  (target at most 0.2), and which factor that is; and the same leaving rotation out ("rotation aside"): a
  model that draws its shapes as round blobs (these do, most of the time) has no rotation in its pictures, and
  the measurer's reading of a rotation that is not there is noise of about one standard deviation, whatever
  the edit;
- "refused": the share of locked edits explorer.edit refused (a direction the locks leave no room for).

A circular factor (hue, rotation) is unwrapped along the amounts: each reading is taken the short way round
from the one at the amount before, so a hue going 300, 350, 10, 60 degrees rises steadily (its steps of one
standard deviation, about 100 degrees, are under half a turn), where amounts of +-2 sd (about +-200 degrees) read
against amount 0 the short way would wrap. The other factors' moves are taken the short way from amount 0. Figures from this machine's CPU (torch's 2 threads)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer import load_model  # noqa: E402
from explorer.attributes import directions_for, edit, measures_of  # noqa: E402
from explorer.evaluate_shapes import shapes_models  # noqa: E402

AMOUNTS = (-2.0, -1.0, 0.0, 1.0, 2.0)


def spearman_rows(values: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row (latent) of `values` (n, 5) with the increasing amounts."""
    ranks = values.argsort(1).argsort(1).astype(float)
    a = ranks - ranks.mean(1, keepdims=True)
    b = np.arange(values.shape[1], dtype=float) - (values.shape[1] - 1) / 2
    return (a @ b) / np.sqrt((a ** 2).sum(1) * (b ** 2).sum()).clip(1e-12)


@torch.inference_mode()
def evaluate(name: str, latents: int, seed: int) -> list[dict]:
    model = load_model(name, "cpu")
    directions = directions_for(model)
    measures = measures_of(model)
    names = list(measures.names)
    z = model.sample_latent(latents, seed=seed, temperature=model.default_temperature)
    base = measures.table(model.decode_in_batches(z))
    sd = {n: directions.record["attributes"][n]["sd"] for n in names}
    rows = []
    for i, factor in enumerate(names):
        others = [n for n in names if n != factor]
        row, refused, moved = {"model": name, "factor": factor}, 0, {n: [] for n in others}
        for lock, key in (((), "Spearman"), (tuple(others), "locked")):
            changes = []
            for amount in AMOUNTS:
                try:
                    edited = edit(model, z, {factor: amount}, lock=lock, directions=directions) if amount else z
                except ValueError:
                    refused += 1
                    changes.append(np.full(len(z), np.nan))
                    continue
                table = measures.table(model.decode_in_batches(edited))
                change = measures.difference(table, base)
                changes.append(table[:, i])
                if lock and amount in (-1.0, 1.0):
                    for n in others:
                        moved[n].append(np.abs(change[:, names.index(n)]) / sd[n])
            values = np.stack(changes, 1)
            period = measures.circular.get(factor)
            if period:  # unwrapped along the amounts: one step (1 sd, about 100 degrees of hue) is under half a turn
                values = np.unwrap(values, period=period, axis=1)
            row[key] = float(np.median(spearman_rows(values))) if np.isfinite(values).all() else float("nan")
        medians = {n: float(np.median(np.concatenate(v))) for n, v in moved.items() if v}
        worst = max(medians, key=medians.get) if medians else ""
        row["others moved"], row["worst"] = medians.get(worst, float("nan")), worst
        drawn = {n: m for n, m in medians.items() if n != "rotation"}
        row["others moved, rotation aside"] = max(drawn.values()) if drawn else float("nan")
        row["refused"] = refused / (len(AMOUNTS) - 1)
        rows.append(row)
        print(f"| {name} | {factor} | {row['Spearman']:.2f} | {row['locked']:.2f} | {row['others moved']:.2f} ({row['worst']}) | "
              f"{row['others moved, rotation aside']:.2f} | "
              f"{row['refused']:.0%} |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--latents", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("| model | factor | Spearman | locked | others moved (sd) | rotation aside | refused |\n"
          "|---|---|---|---|---|---|---|")
    for name in args.names or shapes_models():
        evaluate(name, args.latents, args.seed)


if __name__ == "__main__":
    main()
