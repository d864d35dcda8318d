"""The notes' complexity lesson, live: the likelihood's gradient needs an expectation over every state of the
machine, 2^N terms, which contrastive divergence replaces with a few Gibbs steps from the data. On a machine small
enough to enumerate, the notes' spin RBM (explorer.models.rbm, units="spin-gaussian") on 4x4 binarised digits,
16 spins and 2^16 states, three copies start from the same weights and train on the same digits:

1. the exact gradient, -dF(data)/d theta + E_model[dF/d theta], the model term summed over all 65,536 states
   (autograd of the exact log-likelihood, log p(s) = -F(s) - log Z);
2. CD-1 and 3. CD-k (Hinton 2002): the model term from k Gibbs steps started at each training digit;

and after every update the exact log-likelihood of the training digits is computed for each, by enumeration.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .models.rbm import RBM, RBMConfig

SIDE = 4  # the digits are SIDE x SIDE spins: 2^16 states, enumerable in a few milliseconds
DIGITS = 500
METHODS = ("exact gradient", "CD-1", "CD-k")


def tiny_digits(n: int = DIGITS) -> torch.Tensor:
    """The first n training digits, each 7x7 block's mean ink thresholded at 0.3: (n, 16) in {0, 1}, float64."""
    from .domains.digits import load_mnist

    images = torch.as_tensor(load_mnist("train").images[:n], dtype=torch.float64) / 255
    blocks = images.view(n, SIDE, 28 // SIDE, SIDE, 28 // SIDE).mean((2, 4))
    return (blocks > 0.3).double().flatten(1)


def exact_log_likelihood(model: RBM, v: torch.Tensor) -> torch.Tensor:
    """Mean log p(v) over the rows of v, nats: -F(v) - log Z, Z by enumerating every visible state."""
    return (-model.free_energy(v) - model.log_partition_exact()).mean()


def train_three(hidden: int = 8, k: int = 10, steps: int = 200, lr: float = 0.02, seed: int = 0,
                data: torch.Tensor | None = None) -> dict[str, dict]:
    """Each of METHODS from the same seeded weights on the same digits, plain gradient steps of size lr on the
    whole set: -> {method: {"log_likelihood": [after 0, 1, ... steps updates], "ms_per_update": float}}."""
    data = tiny_digits() if data is None else data
    start = RBM(RBMConfig(visible=data.shape[1], hidden=hidden, units="spin-gaussian", persistent=False)).double()
    with torch.no_grad():
        start.weight.copy_(0.1 * torch.randn(start.weight.shape, generator=torch.Generator().manual_seed(seed),
                                             dtype=torch.float64))
    results = {}
    for method in METHODS:
        model = RBM(RBMConfig(visible=data.shape[1], hidden=hidden, units="spin-gaussian", persistent=False,
                              cd_k=1 if method == "CD-1" else k)).double()
        model.load_state_dict(start.state_dict())
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        chains = torch.Generator().manual_seed(seed + 1)  # the coin flips: seeded, never the global generator's
        curve, spent = [float(exact_log_likelihood(model, data).detach())], 0.0
        for _ in range(steps):
            began = time.perf_counter()
            if method == "exact gradient":  # step 1
                loss = -exact_log_likelihood(model, data)
            else:  # steps 2 and 3: the family's own CD-k loss, its Gibbs chains drawn from this run's generator
                loss = model.loss(data, chains)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            spent += time.perf_counter() - began
            with torch.no_grad():
                curve.append(float(exact_log_likelihood(model, data)))
        results[method] = {"log_likelihood": curve, "ms_per_update": 1000 * spent / max(steps, 1)}
    return results


def summary(results: dict[str, dict], k: int) -> list[str]:
    """One line per method: its final exact log-likelihood and what an update cost."""
    lines = []
    for method, run in results.items():
        name = f"CD-{k}" if method == "CD-k" else method
        curve = np.asarray(run["log_likelihood"])
        lines.append(f"{name}: log-likelihood {curve[0]:.2f} to {curve[-1]:.2f} nats per digit "
                     f"(best {curve.max():.2f}), {run['ms_per_update']:.1f} ms an update")
    return lines
