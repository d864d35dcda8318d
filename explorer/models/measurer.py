"""The shapes world's measurer: a small network that reads every factor back from an image (explorer.domains.
shapes), as the digit classifier reads the digit. It serves the shapes domain as its attribute measures and its
penultimate features as the feature space of its FID. Trained on the training split only.

Outputs: the shape's logits; for each circular factor (hue, rotation) a point (cos, sin) on the unit circle,
read back as an angle with atan2 (regressing a raw angle would make 359 degrees and 1 degree far apart); for
each linear factor its value scaled to [-1, 1] over its documented range. Rotation is learnt from squares and
triangles only: a circle looks the same at every rotation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base import Trainable
from ..domains.shapes import CIRCULAR, FACTORS, RANGES, SHAPES

LINEAR = tuple(name for name in RANGES if name not in CIRCULAR)  # background, scale, x, y
CIRCLE = SHAPES.index("circle")


@dataclass
class MeasurerConfig:
    channels: tuple = (32, 64, 128)  # three conv stages, 32 -> 4 px
    feature_dim: int = 128  # the FID feature size

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)


class Measurer(Trainable):
    family = "measurer"
    config_class = MeasurerConfig
    needs_labels = True  # batches are (images, factors): the factor table in FACTORS order
    train_defaults = {"steps": 3000, "batch_size": 128, "lr": 2e-3, "warmup": 100}

    def __init__(self, config: MeasurerConfig) -> None:
        super().__init__(config)
        layers, width = [], 3
        for channels in config.channels:
            layers += [nn.Conv2d(width, channels, 3, padding=1), nn.GroupNorm(8, channels), nn.SiLU(),
                       nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(8, channels), nn.SiLU(), nn.MaxPool2d(2)]
            width = channels
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * 16, config.feature_dim), nn.SiLU())
        self.head = nn.Linear(config.feature_dim, len(SHAPES) + 2 * len(CIRCULAR) + len(LINEAR))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 32, 32) in [0, 1] -> (N, feature_dim) penultimate activations."""
        return self.body(x * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @staticmethod
    def targets(factors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A factor table (N, len(FACTORS)) -> (shape indices, circular points (N, 2 * circular), scaled linear)."""
        column = {name: factors[:, i] for i, name in enumerate(FACTORS)}
        angles = torch.stack([column[n] * (2 * math.pi / CIRCULAR[n]) for n in CIRCULAR], 1)
        points = torch.stack([angles.cos(), angles.sin()], 2).flatten(1)
        linear = torch.stack([(column[n] - sum(RANGES[n]) / 2) / ((RANGES[n][1] - RANGES[n][0]) / 2) for n in LINEAR], 1)
        return column["shape"].long(), points, linear

    def loss(self, batch) -> dict[str, torch.Tensor]:
        x, factors = batch
        shape, points, linear = self.targets(factors.float())
        out = self(x)
        k, c = len(SHAPES), 2 * len(CIRCULAR)
        logits, points_out, linear_out = out[:, :k], out[:, k:k + c], out[:, k + c:]
        circular_error = (points_out - points) ** 2
        rotation = list(CIRCULAR).index("rotation")
        seen = (shape != CIRCLE).float()  # a circle's rotation is not in its picture
        circular_error[:, 2 * rotation:2 * rotation + 2] *= seen[:, None]
        shape_loss = F.cross_entropy(logits, shape)
        regression = circular_error.mean() + ((linear_out - linear) ** 2).mean()
        return {"loss": shape_loss + 10 * regression, "shape_accuracy": (logits.argmax(1) == shape).float().mean(),
                "regression": regression}

    @torch.inference_mode()
    def read(self, x: torch.Tensor, batch_size: int = 1000) -> tuple[dict[str, np.ndarray], torch.Tensor]:
        """Images (N, 3, 32, 32) in [0, 1] -> (every factor read back, in its own units: "shape" the likeliest kind,
        "shape_probs" (N, kinds), angles in degrees in [0, 360); the features (N, feature_dim)), in eval mode."""
        device = next(self.parameters()).device
        outs, feats = [], []
        for chunk in x.split(batch_size):
            f = self.features(chunk.to(device).float())
            feats.append(f.cpu())
            outs.append(self.head(f).cpu())
        out, k = torch.cat(outs).double(), len(SHAPES)
        probs = F.softmax(out[:, :k], 1)
        read = {"shape": probs.argmax(1).numpy(), "shape_probs": probs.numpy()}
        for i, name in enumerate(CIRCULAR):
            cos, sin = out[:, k + 2 * i], out[:, k + 2 * i + 1]
            read[name] = (torch.rad2deg(torch.atan2(sin, cos)) % 360 * CIRCULAR[name] / 360).numpy()
        for i, name in enumerate(LINEAR):
            low, high = RANGES[name]
            read[name] = (out[:, k + 2 * len(CIRCULAR) + i] * (high - low) / 2 + (high + low) / 2).numpy()
        return read, torch.cat(feats)


class ShapeClassifier(nn.Module):
    """The measurer seen as the shapes domain's classifier, the face the digit classifier shows the views:
    forward gives the shape's logits (for the edits' class locks and their guidance), predict the shape
    probabilities and the FID features."""

    def __init__(self, measurer: Measurer) -> None:
        super().__init__()
        self.measurer = measurer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.measurer(x)[:, :len(SHAPES)]

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        read, features = self.measurer.read(x, batch_size)
        return torch.from_numpy(read["shape_probs"]).float(), features


def circular_r2(truth: np.ndarray, read: np.ndarray, period: float) -> float:
    """R^2 for an angle: 1 - (mean squared error, each error the short way round) / (mean squared deviation of
    the truth from its circular mean, the short way round)."""
    def wrapped(a):
        return (a + period / 2) % period - period / 2

    angle = truth * 2 * np.pi / period
    mean = np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()) * period / (2 * np.pi)
    return float(1 - (wrapped(read - truth) ** 2).mean() / (wrapped(truth - mean) ** 2).mean())


def heldout_figures(measurer: Measurer) -> dict[str, float]:
    """On the held-out split: shape accuracy, and R^2 of every other factor (circular for hue and rotation;
    rotation over squares and triangles, the shapes it is visible on)."""
    from ..data import load_dataset, to_tensor

    data = load_dataset("shapes", "heldout")
    read, _ = measurer.read(to_tensor(data.images))
    truth = {name: data.labels[:, i].astype(np.float64) for i, name in enumerate(FACTORS)}
    figures = {"shape_accuracy": float((read["shape"] == truth["shape"]).mean())}
    visible = truth["shape"] != CIRCLE
    for name in FACTORS[1:]:
        rows = visible if name == "rotation" else np.ones(len(visible), bool)
        if name in CIRCULAR:
            figures[f"{name}_r2"] = circular_r2(truth[name][rows], read[name][rows], CIRCULAR[name])
        else:
            error = ((read[name] - truth[name]) ** 2).mean()
            figures[f"{name}_r2"] = float(1 - error / truth[name].var())
    return figures


def main(argv: list[str] | None = None) -> None:
    """python -m explorer.models.measurer [NAME] [--write]: the measurer's held-out figures (and, with --write,
    stored in its checkpoint's config.json)."""
    import argparse
    import json
    import sys

    from ..checkpoint import CONFIG_FILE, load_checkpoint, resolve

    parser = argparse.ArgumentParser(prog="python -m explorer.models.measurer", description=main.__doc__)
    parser.add_argument("name", nargs="?", default="measurer-shapes")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    folder = resolve(args.name)
    figures = heldout_figures(load_checkpoint(folder, "cpu").eval())
    print(", ".join(f"{k} {v:.4f}" for k, v in figures.items()))
    if args.write:
        record = json.loads((folder / CONFIG_FILE).read_text())
        given = sys.argv[1:] if argv is None else argv
        record["metrics"] = {**figures, "command": "python -m explorer.models.measurer " + " ".join(given)}
        (folder / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
