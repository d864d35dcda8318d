"""A small MNIST classifier. Evaluation uses its penultimate features for FID (Heusel et al. 2017, with this
network in place of Inception, as is usual for MNIST) and its probabilities for confidence, class shares and
an Inception-style score (Salimans et al. 2016). Trained on the training split only."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Trainable


@dataclass
class ClassifierConfig:
    channels: tuple = (32, 64)  # two conv stages reach ~99% on MNIST; more buys nothing for evaluation
    feature_dim: int = 128  # the FID feature size
    dropout: float = 0.3
    max_shift: int = 2  # training-time random translation in pixels, so off-centre samples are still read

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)


class Classifier(Trainable):
    family = "classifier"
    config_class = ClassifierConfig
    needs_labels = True
    train_defaults = {"steps": 1500, "batch_size": 128, "lr": 1e-3, "warmup": 100}  # 16 epochs: ~99% held-out

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        c1, c2 = config.channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.Conv2d(c1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(c2 * 49, config.feature_dim), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, 10))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) in [0, 1] -> (N, feature_dim) penultimate activations."""
        return self.body(x * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities (N, 10), features (N, feature_dim)) in eval mode, batched."""
        probs, feats = [], []
        for chunk in x.split(batch_size):
            f = self.features(chunk.to(next(self.parameters()).device))
            feats.append(f.cpu())
            probs.append(F.softmax(self.head(f), dim=1).cpu())
        return torch.cat(probs), torch.cat(feats)

    def loss(self, batch) -> dict[str, torch.Tensor]:
        x, y = batch
        s = self.config.max_shift
        if s:  # random translation: pad, then crop at a random offset (one offset per batch is enough)
            dy, dx = torch.randint(0, 2 * s + 1, (2,)).tolist()
            x = F.pad(x, (s, s, s, s))[:, :, dy : dy + 28, dx : dx + 28]
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        return {"loss": loss, "accuracy": (logits.argmax(1) == y).float().mean()}
