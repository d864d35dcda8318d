"""How unlike its training data an image is, by a model's own account: the lecture notes' use of autoencoders
and likelihood models for anomaly detection. Each model scores an image with what its capability flags offer:

1. bits per dimension where it has a likelihood (-log2 p(x) / D: exact for a flow or a PixelCNN, a bound for
   a VAE);
2. else the free energy per pixel where it has one (an RBM's unnormalised -log p(x));
3. else the reconstruction error |x - decode(encode(x))|^2 per pixel where it encodes in one pass and not
   exactly (an autoencoder: it learns to rebuild what it was trained on, and rebuilds other things badly).

Higher is less like the training data. A score means little alone, so it is placed on the same score of the
domain's held-out images: its percentile among them, and "not like the training data" above the 99th.
Likelihoods are known to mislead on some other data sets (Nalisnick et al. 2019, "Do Deep Generative Models
Know What They Don't Know?"): the panel shows every model's verdict side by side rather than one.
"""

from __future__ import annotations

import numpy as np
import torch

OUTLIER_PERCENTILE = 99.0
CHUNK = 250


def score_kind(model) -> str | None:
    """What `model` scores images by (steps 1-3), or None where it can score none."""
    if model.has_likelihood:
        return "bits/dim (a bound)" if model.likelihood_kind.startswith("bound") else "bits/dim"
    if model.has_free_energy:
        return "free energy per pixel"
    if model.can_encode and model.encode_is_fast and not model.encode_is_exact and not model.conditional:
        return "reconstruction error per pixel"
    return None


@torch.no_grad()
def scores(model, images: torch.Tensor) -> np.ndarray:
    """(N,) scores of images (N, C, H, W) in [0, 1] by `model`'s score_kind; higher is less typical."""
    kind = score_kind(model)
    if kind is None:
        raise ValueError(f"a {model.family} model without a likelihood, a free energy or a one-pass encoder "
                         "cannot score images")
    out = []
    for chunk in images.split(CHUNK):
        chunk = chunk.to(model.device)
        if kind.startswith("bits/dim"):  # step 1
            out.append(model.bits_per_dim(chunk).cpu())
        elif kind.startswith("free energy"):  # step 2
            out.append(model.image_free_energy(chunk).cpu() / chunk[0].numel())
        else:  # step 3
            rebuilt = model.decode(model.encode(chunk))
            out.append((rebuilt - chunk).pow(2).flatten(1).mean(1).cpu())
    return torch.cat(out).double().numpy()


def percentile(score: float, reference: np.ndarray) -> float:
    """The share of reference scores below `score`, in percent (ties count half)."""
    reference = np.asarray(reference)
    return float(100 * ((reference < score).mean() + 0.5 * (reference == score).mean()))


def verdict(score: float, reference: np.ndarray) -> str:
    share = percentile(score, reference)
    if share > OUTLIER_PERCENTILE:
        return f"not like the training data (above {share:.1f}% of held-out images)"
    return f"like the training data (above {share:.0f}% of held-out images)"
