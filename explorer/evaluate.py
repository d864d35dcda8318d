"""Evaluate generative checkpoints against the held-out digits: `python -m explorer.evaluate [NAME ...]`.

For each model it draws --samples images from seeded latents and reports, beside the real-data floor
measured in the same run (as many training images as samples, against the held-out set):
FID on the shipped classifier's features, the classifier's mean confidence, the share of the rarest digit,
an Inception-style score, the nearest-training-image distance of samples relative to that of held-out digits
(about 1 when samples are not copies), bits/dim on the held-out digits where the family defines it, the mean
free energy of held-out digits, training digits and samples for an RBM (whose likelihood needs its partition
function), and the sampling time per image. --write stores the figures in each checkpoint's config.json.

FID from 1,000 samples moves by several percent from one draw to the next (the sample covariance of 128
features is noisy), so --repeats K also measures the FID ratio to the floor for seeds seed, ..., seed+K-1,
each seed drawing both the model's samples and the floor's training subset, and reports its mean and
standard deviation: two models whose ratios are a standard deviation apart are not told apart by one draw.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from .checkpoint import CONFIG_FILE, SAMPLES_FILE, list_models, resolve
from .open import load_model
from .data import image_grid, load_mnist, to_tensor
from .metrics import (class_shares, frechet_distance, gaussian_stats, inception_score, inception_score_splits,
                      load_classifier, nearest_distances)


def sample(model, n: int, seed: int, temperature: float, batch_size: int = 250) -> tuple[torch.Tensor, float]:
    """n images from seeded latents, and the wall time per image in ms."""
    z = model.sample_latent(n, seed=seed, temperature=temperature)
    began = time.perf_counter()
    images = model.decode_in_batches(z, batch_size)
    return images, (time.perf_counter() - began) / n * 1000


def evaluate_images(images: torch.Tensor, classifier, heldout_stats, train_images: torch.Tensor,
                    heldout_nn_median: float) -> dict:
    probs, features = classifier.predict(images)
    shares = class_shares(probs.numpy())
    return {
        "fid": round(frechet_distance(gaussian_stats(features.numpy()), heldout_stats), 3),
        "confidence": round(float(probs.max(dim=1).values.mean()), 4),
        "min_class_share": round(float(shares.min()), 4),
        "class_shares": [round(float(s), 4) for s in shares],
        "inception_score": round(inception_score(probs.numpy()), 3),  # over the whole set: the README's table
        "inception_score_splits": splits_score(probs.numpy()),
        "nn_distance_ratio": round(float(nearest_distances(images, train_images).median()) / heldout_nn_median, 3),
    }


def splits_score(probs: np.ndarray, splits: int = 10) -> dict:
    """The Inception-style score as Salimans et al. report it, over `splits` parts (fewer for a tiny set)."""
    splits = min(splits, len(probs))
    mean, sd = inception_score_splits(probs, splits)
    return {"splits": splits, "mean": round(mean, 3), "sd": round(sd, 3)}


def training_subset(train_x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """The real-data floor's n training digits, picked with this seed."""
    return train_x[np.random.default_rng(seed).choice(len(train_x), size=min(n, len(train_x)), replace=False)]


def fid_to_heldout(images: torch.Tensor, classifier, heldout_stats) -> float:
    _, features = classifier.predict(images)
    return frechet_distance(gaussian_stats(features.numpy()), heldout_stats)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m explorer.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="checkpoints to evaluate (default: every generative one)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=None, help="sample every model at this temperature "
                        "(default: each model's own, from its config)")
    parser.add_argument("--repeats", type=int, default=1, help="also report the FID ratio's mean and standard "
                        "deviation over this many seeds (from --seed on)")
    parser.add_argument("--write", action="store_true", help="store the figures in each checkpoint's config.json")
    args = parser.parse_args(argv)
    if not 1 <= args.repeats <= 100:
        parser.error(f"--repeats must be between 1 and 100, not {args.repeats}")
    if args.samples < 2:
        parser.error(f"--samples must be at least 2 (FID needs a covariance), not {args.samples}")
    if args.threads:
        torch.set_num_threads(args.threads)

    classifier = load_classifier(args.device)
    heldout, train = load_mnist("heldout"), load_mnist("train")
    heldout_x, train_x = to_tensor(heldout.images), to_tensor(train.images)
    heldout_probs, heldout_features = classifier.predict(heldout_x)
    heldout_stats = gaussian_stats(heldout_features.numpy())
    accuracy = float((heldout_probs.argmax(1).numpy() == heldout.labels).mean())
    heldout_nn_median = float(nearest_distances(heldout_x, train_x).median())
    floor = evaluate_images(training_subset(train_x, args.samples, args.seed), classifier, heldout_stats, train_x,
                            heldout_nn_median)
    floor["nn_distance_ratio"] = None  # training images are their own nearest neighbours
    print(f"classifier held-out accuracy {accuracy:.4f}; real-data floor (train vs held-out) FID {floor['fid']}")
    repeat_seeds = range(args.seed, args.seed + args.repeats) if args.repeats > 1 else range(0)
    repeat_floors = [fid_to_heldout(training_subset(train_x, args.samples, seed), classifier, heldout_stats)
                     for seed in repeat_seeds]

    rows = [{"name": "real data (train vs held-out)", "family": "data", **floor}]
    for name in args.names or list_models():
        model = load_model(name, args.device)
        temperature = model.default_temperature if args.temperature is None else args.temperature
        images, ms_per_image = sample(model, args.samples, args.seed, temperature)
        row = {"name": name, "family": model.family, **evaluate_images(images, classifier, heldout_stats, train_x, heldout_nn_median)}
        row["fid_over_floor"] = round(row["fid"] / floor["fid"], 2)
        row["temperature"] = temperature
        row["sampling_ms_per_image"] = round(ms_per_image, 2)
        if repeat_floors:
            ratios = []
            for seed, floor_at_seed in zip(repeat_seeds, repeat_floors):
                repeat_images = images if seed == args.seed else sample(model, args.samples, seed, temperature)[0]
                ratios.append(fid_to_heldout(repeat_images, classifier, heldout_stats) / floor_at_seed)
            row["fid_over_floor_repeats"] = {"seeds": list(repeat_seeds), "ratios": [round(r, 3) for r in ratios],
                                             "mean": round(float(np.mean(ratios)), 3),
                                             "sd": round(float(np.std(ratios, ddof=1)), 3)}
        if model.has_likelihood:
            bpd = torch.cat([model.bits_per_dim(chunk).cpu() for chunk in heldout_x.split(500)])
            row["heldout_bits_per_dim"] = round(float(bpd.mean()), 4)
            row["likelihood_kind"] = model.likelihood_kind
        if model.has_free_energy:  # the same number of digits from each set, binarised with the same seed
            n = len(heldout_x)
            row["free_energy_heldout"] = round(float(model.image_free_energy(heldout_x).mean()), 2)
            row["free_energy_train"] = round(float(model.image_free_energy(train_x[:n]).mean()), 2)
            row["free_energy_samples"] = round(float(model.image_free_energy(images).mean()), 2)
        row["parameters"] = sum(p.numel() for p in model.parameters())
        rows.append(row)
        print(json.dumps(row))
        if args.write:
            image_grid(images[:64], ncols=8, scale=2).save(resolve(name) / SAMPLES_FILE)  # the samples measured
            path = resolve(name) / CONFIG_FILE
            record = json.loads(path.read_text())
            record["metrics"] = {k: v for k, v in row.items() if k not in ("name", "family")} | {
                "real_data_floor_fid": floor["fid"], "samples": args.samples, "seed": args.seed,
                "classifier": "classifier-mnist", "classifier_heldout_accuracy": round(accuracy, 4),
                "measured_on": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
                "command": "python -m explorer.evaluate " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
            }
            path.write_text(json.dumps(record, indent=2) + "\n")

    print()
    print("| model | family | FID (x floor) | confidence | rarest class | IS (whole set; 10 splits) | NN-distance ratio | bits/dim (held-out) "
          "| free energy (held-out / train) | ms/image |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fid = f"{r['fid']:.2f}" + (f" ({r['fid_over_floor']:.1f}x)" if "fid_over_floor" in r else " (1x)")
        if "fid_over_floor_repeats" in r:
            spread = r["fid_over_floor_repeats"]
            fid += f"; {spread['mean']:.1f}x +- {spread['sd']:.1f} over {len(spread['seeds'])} seeds"
        bpd = f"{r['heldout_bits_per_dim']:.3f}" if "heldout_bits_per_dim" in r else "-"
        nn = f"{r['nn_distance_ratio']:.2f}" if r.get("nn_distance_ratio") is not None else "-"
        ms = f"{r['sampling_ms_per_image']:.2f}" if "sampling_ms_per_image" in r else "-"
        free = f"{r['free_energy_heldout']:.1f} / {r['free_energy_train']:.1f}" if "free_energy_heldout" in r else "-"
        split = r["inception_score_splits"]
        print(f"| {r['name']} | {r['family']} | {fid} | {r['confidence']:.3f} | {r['min_class_share']:.1%} | "
              f"{r['inception_score']:.2f}; {split['mean']:.2f} ± {split['sd']:.2f} | {nn} | {bpd} | {free} | {ms} |")
    return rows


if __name__ == "__main__":
    main()
