"""Do the named sliders do what they say? `python benchmarks/attribute_edits.py [NAME ...]`

For each model, over 40 random latents and amounts -2, -1, 0, +1, +2 of each of thickness, slant and width,
prints: the median Spearman correlation between amount and the measured attribute (target at least 0.9);
the share of edits at -1 and +1 the classifier reads as the same digit as at 0 (target 90%), plain and with
"keep the digit" (lock=("digit",)), and the lowest of the three median Spearman correlations with that lock
(the digit hold must not undo the edit); and, for a thickness edit of +2, how far slant moves in standard deviations of slant, with slant locked and, for
reference in the same run, unlocked (target with the lock: at most 0.3). `--digit-only` prints just the two
same-digit columns (for diffusion, whose full table takes hours on a 2-core CPU). `--combined` prints how well
sliders moved together keep their amounts: every pair of thickness, slant and width at +-1 each with the third
locked, solved together by `explorer.edit` and, for reference in the same run, one edit at a time with the
deltas added (the way before); the share of (latent, edited attribute) within the Edit tab's tolerance
(EDIT_TOLERANCE_SD, 0.5 sd) of its amount, the median miss, the locked attribute's mean move, and the issue's case
(thickness +2, width -2, slant locked: thickness reached)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer import list_models, load_model  # noqa: E402
from explorer.attributes import directions_for, edit, measure, morphometrics  # noqa: E402
from explorer.ui.edit import EDIT_TOLERANCE_SD  # noqa: E402

AMOUNTS = (-2.0, -1.0, 0.0, 1.0, 2.0)
EDITED = ("thickness", "slant", "width")


def spearman_rows(values: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row (latent) of `values` (n, 5) with the increasing amounts."""
    ranks = values.argsort(1).argsort(1).astype(float)
    amount_ranks = np.arange(values.shape[1], dtype=float)
    a = ranks - ranks.mean(1, keepdims=True)
    b = amount_ranks - amount_ranks.mean()
    return (a @ b) / np.sqrt((a**2).sum(1) * (b**2).sum()).clip(1e-12)


def setup(name: str, latents: int, seed: int):
    """(model, its attribute directions, the latents every edit starts from)."""
    model = load_model(name, "cpu")
    return model, directions_for(model), model.sample_latent(latents, seed=seed, temperature=model.default_temperature)


def edited_measures(model, z, attribute: str, amount: float, directions) -> tuple[dict, dict]:
    """The measures of z edited by `amount` of `attribute`: plain, and with "keep the digit"."""
    plain = measure(model.decode(edit(model, z, {attribute: amount}, directions=directions)))
    kept = measure(model.decode(edit(model, z, {attribute: amount}, lock=("digit",), directions=directions)))
    return plain, kept


@torch.inference_mode()
def same_digit_only(name: str, latents: int, seed: int) -> dict:
    """Only the digit columns, at -1 and +1: for diffusion, where every decode is 50 UNet passes and the
    full table takes hours on this CPU."""
    model, directions, z = setup(name, latents, seed)
    base = measure(model.decode(z))["digit"]
    plain, kept = [], []
    for attribute in EDITED:
        for amount in (-1.0, 1.0):
            figures, figures_kept = edited_measures(model, z, attribute, amount, directions)
            plain.append(figures["digit"] == base)
            kept.append(figures_kept["digit"] == base)
    return {"model": name, "same digit": float(np.mean(plain)), "same digit, kept": float(np.mean(kept))}


@torch.inference_mode()
def evaluate(name: str, latents: int, seed: int) -> dict:
    model, directions, z = setup(name, latents, seed)
    row = {"model": name}
    base = measure(model.decode(z))
    same_digit, same_digit_kept, spearman_kept = [], [], []
    for attribute in EDITED:
        measured, measured_kept = [], []
        for amount in AMOUNTS:
            figures, kept = edited_measures(model, z, attribute, amount, directions)
            measured.append(figures[attribute])
            measured_kept.append(kept[attribute])
            if amount in (-1.0, 1.0):
                same_digit.append(figures["digit"] == base["digit"])
                same_digit_kept.append(kept["digit"] == base["digit"])
        row[attribute] = float(np.median(spearman_rows(np.stack(measured, 1))))
        spearman_kept.append(np.median(spearman_rows(np.stack(measured_kept, 1))))
    row["Spearman, kept (worst)"] = float(min(spearman_kept))
    row["same digit"] = float(np.mean(np.concatenate(same_digit)))
    row["same digit, kept"] = float(np.mean(np.concatenate(same_digit_kept)))
    slant_sd = directions.record["attributes"]["slant"]["sd"]
    thick_sd = directions.record["attributes"]["thickness"]["sd"]
    try:
        for lock, key in (((), "slant moved, unlocked"), (("slant",), "slant moved, locked")):
            moved = measure(model.decode(edit(model, z, {"thickness": 2.0}, lock=lock, directions=directions)))["slant"]
            row[key] = float(np.mean(np.abs(moved - base["slant"])) / slant_sd)
        locked = measure(model.decode(edit(model, z, {"thickness": 1.0}, lock=("slant",), directions=directions)))
        row["thickness +1 (sd)"] = float(np.mean(locked["thickness"] - base["thickness"]) / thick_sd)
    except ValueError:  # a 2-D latent: thickness and slant directions nearly coincide, and edit refuses the lock
        row["slant moved, locked"] = row["thickness +1 (sd)"] = float("nan")
    return row


@torch.inference_mode()
def combined(name: str, latents: int, seed: int) -> dict:
    """Pairs of sliders at +-1 with the third locked: solved together, and one at a time (deltas added)."""
    model, directions, z = setup(name, latents, seed)
    base = morphometrics(model.decode(z))
    sd = {n: directions.record["attributes"][n]["sd"] for n in EDITED}
    row = {"model": name}
    for way in ("together", "one at a time"):
        misses, locked_moves = [], []
        for third in EDITED:
            pair = [n for n in EDITED if n != third]
            for signs in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                amounts = dict(zip(pair, map(float, signs)))
                try:
                    if way == "together":
                        edited = edit(model, z, amounts, lock=(third,), directions=directions)
                    else:
                        edited = z + sum(edit(model, z, {n: a}, lock=(third,), directions=directions) - z for n, a in amounts.items())
                except ValueError:  # a 2-D latent: the lock leaves no room
                    continue
                after = morphometrics(model.decode(edited))
                misses += [np.abs((after[n] - base[n]) / sd[n] - a) for n, a in amounts.items()]
                locked_moves.append(np.abs(after[third] - base[third]) / sd[third])
        if not misses:
            return {**row, "refused": True}
        misses = np.concatenate(misses)
        row[f"within, {way}"] = float(np.mean(misses <= EDIT_TOLERANCE_SD))
        row[f"median miss, {way}"] = float(np.median(misses))
        row[f"locked moved, {way}"] = float(np.mean(np.concatenate(locked_moves)))
    try:
        after = morphometrics(model.decode(edit(model, z, {"thickness": 2.0, "width": -2.0}, lock=("slant",), directions=directions)))
        row["issue case"] = float(np.mean(after["thickness"] - base["thickness"]) / sd["thickness"])
    except ValueError:
        row["issue case"] = float("nan")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--latents", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--digit-only", action="store_true", help="only the two same-digit columns")
    parser.add_argument("--combined", action="store_true", help="only the combined-edit columns")
    args = parser.parse_args()
    names = args.names or [n for n in list_models()]
    if args.combined:
        ways = ("together", "one at a time")
        columns = [f"{c}, {w}" for c in ("within", "median miss", "locked moved") for w in ways] + ["issue case"]
        print("| model | " + " | ".join(columns) + " | seconds |\n|---|" + "---|" * (len(columns) + 1))
        for name in names:
            began = time.perf_counter()
            row = combined(name, args.latents, args.seed)
            cells = (["refused"] * len(columns) if row.get("refused") else
                     [f"{row[c]:.0%}" if c.startswith("within") else "refused" if np.isnan(row[c]) else f"{row[c]:.2f}" for c in columns])
            print(f"| {name} | " + " | ".join(cells) + f" | {time.perf_counter() - began:.0f} |", flush=True)
        return
    if args.digit_only:
        print("| model | same digit | same digit, kept | seconds |\n|---|---|---|---|")
        for name in names:
            began = time.perf_counter()
            row = same_digit_only(name, args.latents, args.seed)
            print(f"| {name} | {row['same digit']:.0%} | {row['same digit, kept']:.0%} | {time.perf_counter() - began:.0f} |", flush=True)
        return
    columns = [*EDITED, "same digit", "same digit, kept", "Spearman, kept (worst)", "slant moved, unlocked", "slant moved, locked", "thickness +1 (sd)"]
    print("| model | " + " | ".join(f"Spearman {c}" if c in EDITED else c for c in columns) + " | seconds |")
    print("|---|" + "---|" * (len(columns) + 1))
    for name in names:
        began = time.perf_counter()
        row = evaluate(name, args.latents, args.seed)
        cells = ["refused" if np.isnan(row[c]) else f"{row[c]:.0%}" if c.startswith("same digit") else f"{row[c]:.2f}"
                 for c in columns]
        print(f"| {name} | " + " | ".join(cells) + f" | {time.perf_counter() - began:.0f} |", flush=True)


if __name__ == "__main__":
    main()
