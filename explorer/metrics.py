"""Sample-quality figures computed with the shipped MNIST classifier: FID on its penultimate features
(Heusel et al. 2017), an Inception-style score (Salimans et al. 2016), confidence and class shares, and a
nearest-neighbour check that samples are not copies of training digits."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

CLASSIFIER_NAME = "classifier-mnist"
MEASURER_NAME = "measurer-shapes"


def device_key(device: str | torch.device | None) -> str:
    """One string per device, for caches: "cpu" and torch.device("cpu") name the same device, and "cuda" is
    given the index it means, as a model's parameters report it ("cuda:0"). None picks the best device."""
    from .base import pick_device

    device = pick_device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def load_classifier(device: str | torch.device | None = None):
    """The shipped MNIST classifier on `device` (None picks the best, as load_model does), one per device."""
    return _load_shipped(CLASSIFIER_NAME, device_key(device))


def load_measurer(device: str | torch.device | None = None):
    """The shipped shapes measurer (explorer.models.measurer) on `device`, one per device."""
    return _load_shipped(MEASURER_NAME, device_key(device))


def load_shape_classifier(device: str | torch.device | None = None):
    """The shapes measurer as the shapes domain's classifier (measurer.ShapeClassifier), one per device."""
    return _shape_classifier(device_key(device))


@lru_cache(maxsize=8)
def _load_shipped(name: str, device: str):
    from .checkpoint import load_checkpoint, resolve

    return load_checkpoint(resolve(name), device)


@lru_cache(maxsize=4)
def _shape_classifier(device: str):
    from .models.measurer import ShapeClassifier

    return ShapeClassifier(load_measurer(device)).eval()


def gaussian_stats(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al. 2017, Eq. 6).

    Tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of S_a S_b, which are real and
    non-negative for covariance matrices; tiny negative or imaginary parts are rounding error."""
    (mu_a, cov_a), (mu_b, cov_b) = stats_a, stats_b
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def inception_score(probs: np.ndarray | torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))): 10 for confident samples spread evenly over the ten digits, 1 at worst."""
    p = np.asarray(probs, dtype=np.float64).clip(1e-12, 1)
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp((p * (np.log(p) - np.log(marginal))).sum(axis=1).mean()))


def inception_score_splits(probs: np.ndarray | torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """The score as Salimans et al. (2016) report it: on each of `splits` equal consecutive parts of the set,
    then the mean and standard deviation over the parts (their code's np.mean, np.std). Each part's marginal
    p(y) comes from fewer images, so this reads a little below the whole set's score, and far below it where
    the parts differ from each other (a part holding one class scores 1)."""
    p = np.asarray(probs, dtype=np.float64)
    if not 1 <= splits <= len(p):
        raise ValueError(f"splits must be between 1 and the {len(p)} images, got {splits}")
    scores = [inception_score(part) for part in np.array_split(p, splits)]
    return float(np.mean(scores)), float(np.std(scores))


def class_shares(probs: np.ndarray | torch.Tensor) -> np.ndarray:
    """Share of images the classifier assigns to each digit 0-9."""
    predicted = np.asarray(probs).argmax(axis=1)
    return np.bincount(predicted, minlength=10) / len(predicted)


def nearest_distances(queries: torch.Tensor, references: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    """Euclidean pixel distance from each query image to its nearest reference image."""
    refs = references.flatten(1).float()
    return torch.cat([torch.cdist(q.flatten(1).float(), refs).min(dim=1).values for q in queries.split(chunk)])
