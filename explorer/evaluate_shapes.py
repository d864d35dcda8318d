"""Evaluate the models of the shapes world (explorer.domains.shapes) against its truth:
`python -m explorer.evaluate_shapes [NAME ...] [--write]`.

As explorer.evaluate does for the digits, with the shapes measurer (explorer.models.measurer) in the
classifier's place, each model draws --samples images from seeded latents and is compared with the real-data
floor measured in the same run (as many training images as samples, against the held-out split):

- FID on the measurer's 128 penultimate features against the held-out images (Heusel et al. 2017);
- factor coverage: the share of samples the measurer reads as the rarest shape (a third is even), and, for each
  continuous factor, the share of ten equal bins of its documented range that hold at least half of an even
  share of the samples (1 when the samples reach over every factor's whole range);
- the nearest-training-image distance of samples relative to that of held-out images (about 1: not copies);
- for every model that encodes in one pass (the VAEs), the disentanglement of its encodings of the 2,000
  held-out images against their known factors: MIG (Chen et al. 2018) and DCI disentanglement, completeness
  and informativeness (Eastwood & Williams 2018), with explorer.disentanglement. A circular factor (hue,
  rotation) enters DCI's regressions as its cosine and sine, and the shape as one indicator per kind; each
  factor's importance is the sum over its columns. A circle's rotation is not in its picture, so rotation is
  scored on squares and triangles only (MIG over those rows; DCI with the circles' rotation columns at their
  mean, which carries no information either way).

--write stores the figures in each checkpoint's config.json (metrics), where the Compare tab reads them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from .checkpoint import CHECKPOINTS_DIR, CONFIG_FILE, list_models, read_record, record_domain, resolve
from .data import load_dataset, to_tensor
from .disentanglement import dci_scores, importance_matrix, mig
from .domains.shapes import CIRCULAR, FACTORS, RANGES, SHAPES
from .evaluate import sample, training_subset
from .metrics import MEASURER_NAME, frechet_distance, gaussian_stats, load_measurer, nearest_distances
from .open import PIPELINE_RECORD, load_model

BINS = 10
CIRCLE = SHAPES.index("circle")


def shapes_models() -> list[str]:
    """The shipped models of the shapes world: checkpoints by name, and pipeline folders (the diffusion model,
    saved as diffusers saves one) by their path."""
    names = [name for name in list_models() if record_domain(read_record(resolve(name))) == "shapes"]
    for record in sorted(CHECKPOINTS_DIR.glob(f"*/{PIPELINE_RECORD}")):
        if json.loads(record.read_text()).get("domain") == "shapes":
            names.append(str(record.parent.relative_to(Path.cwd()) if record.is_relative_to(Path.cwd()) else record.parent))
    return names


def record_file(source: str) -> Path:
    """Where a model's figures are kept: a checkpoint's config.json, or an exported pipeline's record."""
    folder = Path(source) if Path(source).is_dir() else resolve(source)
    return folder / PIPELINE_RECORD if (folder / PIPELINE_RECORD).is_file() else folder / CONFIG_FILE


def coverage(read: dict) -> dict:
    """Factor coverage of samples as the measurer reads them (see the module docstring)."""
    n = len(read["shape"])
    shares = np.bincount(read["shape"], minlength=len(SHAPES)) / n
    bins = {}
    for name, (low, high) in RANGES.items():
        counts = np.histogram(np.clip(read[name], low, high), BINS, (low, high))[0]
        bins[name] = round(float((counts >= 0.5 * n / BINS).mean()), 2)
    return {"rarest_shape_share": round(float(shares.min()), 4), "shape_shares": [round(float(s), 4) for s in shares],
            "range_coverage": bins, "mean_range_coverage": round(float(np.mean(list(bins.values()))), 3)}


def factor_columns(factors: dict) -> tuple[np.ndarray, list[list[int]]]:
    """The factor table DCI regresses on: (N, columns), and for each factor in FACTORS its columns."""
    columns, groups = [], []
    visible = factors["shape"] != CIRCLE
    for name in FACTORS:
        start = len(columns)
        if name == "shape":
            columns += [(factors["shape"] == k).astype(np.float64) for k in range(len(SHAPES))]
        elif name in CIRCULAR:
            angle = factors[name] * (2 * np.pi / CIRCULAR[name])
            pair = [np.cos(angle), np.sin(angle)]
            if name == "rotation":  # not in a circle's picture: those rows held at the others' mean
                pair = [np.where(visible, p, p[visible].mean()) for p in pair]
            columns += pair
        else:
            columns.append(factors[name].astype(np.float64))
        groups.append(list(range(start, len(columns))))
    return np.stack(columns, 1), groups


def disentanglement(codes: np.ndarray, factors: dict) -> dict:
    """MIG and DCI of codes (N, d) of images with these known factors (see the module docstring)."""
    truth = np.stack([np.asarray(factors[name], np.float64) for name in FACTORS], 1)
    visible = factors["shape"] != CIRCLE
    rotation = FACTORS.index("rotation")
    others = [k for k in range(len(FACTORS)) if k != rotation]
    mig_all = mig(codes, truth[:, others])  # every factor but rotation, over every image
    mig_rotation = mig(codes[visible], truth[visible][:, [rotation]])
    mig_value = (mig_all * len(others) + mig_rotation) / len(FACTORS)
    table, groups = factor_columns(factors)
    train = np.arange(len(codes)) % 2 == 0  # regressors fitted on half the images, R^2 on the other half
    importance, r2 = importance_matrix(codes, table, train)
    grouped = np.stack([importance[:, g].sum(1) for g in groups], 1)
    d, c = dci_scores(grouped)
    return {"mig": round(float(mig_value), 4), "dci_disentanglement": round(d, 4), "dci_completeness": round(c, 4),
            "dci_informativeness": round(float(r2.mean()), 4)}


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m explorer.evaluate_shapes", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="models to evaluate: shipped names or anything explorer.open "
                        "opens (default: every shipped checkpoint of the shapes world)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--write", action="store_true", help="store the figures in each checkpoint's config.json")
    args = parser.parse_args(argv)
    if args.samples < 2:
        parser.error(f"--samples must be at least 2 (FID needs a covariance), not {args.samples}")
    if args.threads:
        torch.set_num_threads(args.threads)
    measurer = load_measurer("cpu")
    heldout, train = load_dataset("shapes", "heldout"), load_dataset("shapes", "train")
    heldout_x, train_x = to_tensor(heldout.images), to_tensor(train.images)
    heldout_factors = {name: heldout.labels[:, i].astype(np.float64) for i, name in enumerate(FACTORS)}
    heldout_factors["shape"] = heldout_factors["shape"].astype(np.int64)
    heldout_stats = gaussian_stats(measurer.read(heldout_x)[1].numpy())
    heldout_nn = float(nearest_distances(heldout_x, train_x).median())

    def figures(images: torch.Tensor) -> dict:
        read, features = measurer.read(images)
        return {"fid": round(frechet_distance(gaussian_stats(features.numpy()), heldout_stats), 3), **coverage(read),
                "nn_distance_ratio": round(float(nearest_distances(images, train_x).median()) / heldout_nn, 3)}

    floor = figures(training_subset(train_x, args.samples, args.seed))
    floor["nn_distance_ratio"] = None  # training images are their own nearest neighbours
    rows = [{"name": "real data (train vs held-out)", **floor}]
    print(json.dumps(rows[0]))
    for name in args.names or shapes_models():
        model = load_model(name, "cpu")
        images, ms_per_image = sample(model, args.samples, args.seed, model.default_temperature)
        row = {"name": name, "family": model.family, **figures(images)}
        row["fid_over_floor"] = round(row["fid"] / floor["fid"], 2)
        row["sampling_ms_per_image"] = round(ms_per_image, 2)
        if model.can_encode and model.encode_is_fast:
            with torch.inference_mode():
                codes = torch.cat([model.encode(chunk) for chunk in heldout_x.split(500)]).flatten(1).numpy()
            row |= disentanglement(codes, heldout_factors)
        rows.append(row)
        print(json.dumps(row))
        if args.write:
            path = record_file(name)
            record = json.loads(path.read_text())
            record["metrics"] = {k: v for k, v in row.items() if k not in ("name", "family")} | {
                "real_data_floor_fid": floor["fid"], "real_data_floor": floor, "samples": args.samples,
                "seed": args.seed, "measurer": MEASURER_NAME,
                "measured_on": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
                "command": "python -m explorer.evaluate_shapes " + " ".join(argv)}
            path.write_text(json.dumps(record, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
