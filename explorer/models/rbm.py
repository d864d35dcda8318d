"""A restricted Boltzmann machine with binary visible and hidden units, trained with contrastive divergence
(Hinton 2002, "Training Products of Experts by Minimizing Contrastive Divergence"), optionally persistent
(Tieleman 2008, "Training Restricted Boltzmann Machines using Approximations to the Likelihood Gradient").

Energy E(v, h) = -b.v - c.h - v'Wh, p(v, h) = exp(-E) / Z. Summing out h gives the free energy
F(v) = -b.v - sum_j softplus(c_j + (v'W)_j), with p(v) = exp(-F(v)) / Z. Z sums over 2^784 states, so the
likelihood is not computed here (a tiny RBM's is enumerated in the tests); the app and the README report free
energies instead. Digits are binarised stochastically, v ~ Bernoulli(pixel intensity), at every step.

The latent is a standard normal per hidden unit: h_0 = [z > 0] starts a Gibbs chain whose coin flips are
seeded from z itself, so decode(z) is deterministic, and decode_steps shows the chain mixing.

`units="spin-gaussian"` is the lecture notes' machine: visible spins s_i = 2v_i - 1 in {-1, +1}, Gaussian hidden
units l, and H(s, l) = sum_mu l_mu^2 / 2 - sum_i h_i s_i - sum_{i,mu} W_{i,mu} s_i l_mu (no hidden field). Then
  1. p(s_i = +1 | l) = 1 / (1 + exp(-2 x_i)), x_i = sum_mu W_{i,mu} l_mu + h_i;
  2. l | s ~ N(W's, I), so E[l_mu | s] = sum_j W_{j,mu} s_j;
  3. integrating l out, F(s) = -h.s - |W's|^2 / 2 - (M/2) log 2 pi: a Hopfield network with couplings W W'
     (Barra et al. 2012, "On the equivalence of Hopfield networks and Boltzmann machines"), and
  4. CD-k's update Delta W_{i,mu} ~ <s_i sum_j W_{j,mu} s_j>_data - <s_i l_mu>_model, whose model term is taken
     here with E[l | s] for l (the same expectation, less noise), which is -dF/dW at the negative samples.
Its latent is l_0 = z itself, the chain's first hidden state.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base import LatentModel, Step

PIXELS = 28 * 28
NOISE_CHUNK = 50  # Gibbs steps whose coin flips are drawn at once per chain
UNITS = ("binary", "spin-gaussian")


@dataclass
class RBMConfig:
    variant: str = "rbm"
    hidden: int = 500
    visible: int = PIXELS  # 784 for the digits; the tests use a handful so every state can be enumerated
    cd_k: int = 10  # Gibbs steps in the negative phase of each update (CD-k)
    persistent: bool = True  # PCD: negative chains carry over between updates instead of restarting at the data
    # (with CD-1 from the data, chains run from noise for 1,000 steps gave blank images: the model had never
    # been shown where its own chains go; PCD-1 gave one digit; PCD-10 gives every digit)
    chains: int = 100  # persistent chains (PCD only)
    gibbs_steps: int = 1000  # Gibbs steps decode() runs from the random start
    optimizer: str = "adam"  # or "sgd" with momentum, as Hinton 2010 recommends (PCD-1 with it: fewer digits)
    momentum: float = 0.9  # sgd only
    weight_decay: float = 1e-4  # L2 on W only (Hinton 2010, Sec. 10)
    grad_clip: float = 100.0
    units: str = "binary"  # or "spin-gaussian": the notes' visible spins and Gaussian hidden units (module doc)

    def __post_init__(self) -> None:
        if self.units not in UNITS:
            raise ValueError(f"units must be one of {', '.join(UNITS)}, got {self.units!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.visible < 1 or self.hidden < 1 or self.cd_k < 1 or self.gibbs_steps < 1 or self.chains < 1:
            raise ValueError("hidden, cd_k, gibbs_steps and chains must be positive")


def row_generators(z: torch.Tensor) -> list[torch.Generator]:
    """One generator per latent, seeded from the latent's bytes: a chain depends on its own z only, not on
    the others decoded beside it."""
    rows = z.detach().cpu().numpy().astype(np.float32)
    return [torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(r.tobytes()).digest()[:8], "little") >> 1)
            for r in rows]


def all_binary_states(n: int) -> torch.Tensor:
    """Every state of n binary units, (2^n, n) in {0, 1}."""
    return ((torch.arange(2**n).unsqueeze(1) >> torch.arange(n)) & 1).float()


class RBM(LatentModel):
    family = "rbm"
    needs_float64 = True  # the Gibbs chain's coin flips compare float64 uniforms with probabilities
    config_class = RBMConfig
    train_defaults = {"steps": 15000, "batch_size": 100, "lr": 3e-4, "warmup": 1}
    multi_step = True
    has_free_energy = True
    smooth_latent = False  # a latent seeds a random chain: nearby latents give unrelated samples

    def __init__(self, config: RBMConfig) -> None:
        super().__init__(config)
        self.spin = config.units == "spin-gaussian"
        self.weight = nn.Parameter(torch.randn(config.visible, config.hidden) * 0.01)  # Hinton 2010, Sec. 8
        self.visible_bias = nn.Parameter(torch.zeros(config.visible))  # the notes' field h for spins
        self.hidden_bias = nn.Parameter(torch.zeros(0 if self.spin else config.hidden))  # the notes' H has none
        # PCD's fantasy particles; saved with the weights so a resumed run continues the same chains
        self.register_buffer("chains", torch.zeros(config.chains if config.persistent else 0, config.visible))

    def make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        groups = [{"params": [self.weight], "weight_decay": self.config.weight_decay},
                  {"params": [self.visible_bias, self.hidden_bias], "weight_decay": 0.0}]
        if self.config.optimizer == "adam":
            return [torch.optim.Adam(groups, lr=lr)]
        return [torch.optim.SGD(groups, lr=lr, momentum=self.config.momentum)]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.hidden,)

    # --- the model -----------------------------------------------------------------------------------------
    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -b.v - sum_j softplus(c_j + (v'W)_j), per row of v (N, 784) in {0, 1}; nats. For spins
        (step 3), F(s) = -h.s - |W's|^2 / 2 - (M/2) log 2 pi with s = 2v - 1."""
        if self.spin:
            s = 2 * v - 1
            return (-s @ self.visible_bias - 0.5 * (s @ self.weight).pow(2).sum(1)
                    - 0.5 * self.config.hidden * math.log(2 * math.pi))
        return -v @ self.visible_bias - F.softplus(v @ self.weight + self.hidden_bias).sum(1)

    @torch.inference_mode()
    def image_free_energy(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """(N,) free energies of images in [0, 1], binarised as in training from a seeded generator. Lower is
        more probable: held-out digits close to training digits means no overfitting (Hinton 2010, Sec. 6)."""
        x = self.check_images(x).flatten(1)
        v = torch.bernoulli(x.cpu(), generator=torch.Generator().manual_seed(seed)).to(x)
        return self.free_energy(v)

    def hidden_mean(self, v: torch.Tensor) -> torch.Tensor:
        """E[h | v]: sigmoid(c + v'W), or for spins (step 2) W's."""
        if self.spin:
            return (2 * v - 1) @ self.weight
        return torch.sigmoid(v @ self.weight + self.hidden_bias)

    def sample_hidden(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mean = self.hidden_mean(v)
        if self.spin:
            return mean + torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return torch.bernoulli(mean, generator=generator)

    def visible_probs(self, h: torch.Tensor) -> torch.Tensor:
        """p(v = 1 | h): sigmoid(b + W h), or for spins (step 1) p(s = +1 | l) = sigmoid(2 (W l + h))."""
        return torch.sigmoid((2 if self.spin else 1) * (h @ self.weight.T + self.visible_bias))

    def gibbs(self, v: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """k full steps v -> h ~ p(h|v) -> v ~ p(v|h), drawn from `generator` (torch's global one in training)."""
        for _ in range(k):
            v = torch.bernoulli(self.visible_probs(self.sample_hidden(v, generator)), generator=generator)
        return v

    def negative_samples(self, v_data: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The negative phase of CD-k: k Gibbs steps from the data, or from the persistent chains (PCD)."""
        with torch.no_grad():
            if not self.config.persistent:
                return self.gibbs(v_data, self.config.cd_k, generator)
            if not self.chains.any():  # first update: start the fantasy particles from noise
                self.chains.copy_(torch.bernoulli(torch.full_like(self.chains, 0.5), generator=generator))
            self.chains.copy_(self.gibbs(self.chains, self.config.cd_k, generator))
            return self.chains.clone()

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The CD-k surrogate (its step 3 below), coin flips drawn from `generator` (the global one in training)."""
        # 1. binarise the digits: v ~ Bernoulli(intensity)
        v_data = torch.bernoulli(x.flatten(1), generator=generator)
        # 2. negative phase: k Gibbs steps (from the data for CD-k, from the chains for PCD)
        v_model = self.negative_samples(v_data, generator)
        # 3. d log p(v)/d theta = -dF(v)/d theta + E_model[dF/d theta]; the CD-k estimate of the model term is
        #    the negative samples' mean, so minimising mean F(data) - mean F(negatives) ascends it (Hinton 2002,
        #    Eq. 5): for W the gradient is <v p(h|v)'>_negatives - <v p(h|v)'>_data; for spins, step 4's
        #    <s (W's)'>_negatives - <s (W's)'>_data.
        surrogate = self.free_energy(v_data).mean() - self.free_energy(v_model).mean()
        with torch.no_grad():
            reconstruction = (self.visible_probs(self.sample_hidden(v_data, generator)) - x.flatten(1)).pow(2).mean()
        return {"loss": surrogate, "reconstruction_mse": reconstruction,
                "free_energy": self.free_energy(v_data).mean().detach()}

    # --- sampling: a Gibbs chain from a random hidden state -------------------------------------------------
    def chain(self, z: torch.Tensor, steps: int) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield (step, p(v|h_step)) for step 0..steps. Each chain draws its coin flips from its own
        generator, NOISE_CHUNK steps at a time. In float64: a coin flip compares a uniform with a probability,
        and float32 rounding that differs between batch sizes would flip about one chain in ten somewhere in
        a thousand steps, so a sample decoded alone would not match the same sample decoded in a grid."""
        if self.spin:
            yield from self._spin_chain(z, steps)
            return
        weight, b, c = (t.double() for t in (self.weight, self.visible_bias, self.hidden_bias))
        generators = row_generators(z)
        h = (z > 0).double()  # 1. h_0: each hidden unit on with probability 1/2
        yield 0, torch.sigmoid(h @ weight.T + b).float()
        done, visible = 0, self.config.visible
        while done < steps:
            chunk = min(NOISE_CHUNK, steps - done)
            noise = torch.stack([torch.rand(chunk, visible + self.config.hidden, generator=g, dtype=torch.float64)
                                 for g in generators]).to(z.device)
            for t in range(chunk):
                v = (noise[:, t, :visible] < torch.sigmoid(h @ weight.T + b)).double()  # 2. v ~ p(v|h)
                h = (noise[:, t, visible:] < torch.sigmoid(v @ weight + c)).double()  # 3. h ~ p(h|v)
                done += 1
                yield done, torch.sigmoid(h @ weight.T + b).float()  # p(v|h): the state before the last coin flips

    def _spin_chain(self, z: torch.Tensor, steps: int) -> Iterator[tuple[int, torch.Tensor]]:
        """chain() for spins: l_0 = z, then s ~ p(s | l) (step 1) from seeded uniforms and l = W's + noise
        (step 2) from seeded normals; yields p(s = +1 | l), the image."""
        weight, field = self.weight.double(), self.visible_bias.double()
        generators = row_generators(z)
        l = z.double()
        yield 0, torch.sigmoid(2 * (l @ weight.T + field)).float()
        done, visible, hidden = 0, self.config.visible, self.config.hidden
        while done < steps:
            chunk = min(NOISE_CHUNK, steps - done)
            uniforms = torch.stack([torch.rand(chunk, visible, generator=g, dtype=torch.float64) for g in generators])
            normals = torch.stack([torch.randn(chunk, hidden, generator=g, dtype=torch.float64) for g in generators])
            uniforms, normals = uniforms.to(z.device), normals.to(z.device)
            for t in range(chunk):
                spins = 2 * (uniforms[:, t] < torch.sigmoid(2 * (l @ weight.T + field))).double() - 1
                l = spins @ weight + normals[:, t]
                done += 1
                yield done, torch.sigmoid(2 * (l @ weight.T + field)).float()

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        for _, probs in self.chain(z, self.config.gibbs_steps):
            pass
        return probs.view(-1, 1, 28, 28)

    @torch.inference_mode()
    def decode_steps(self, z: torch.Tensor, frames: int = 24, **options) -> Iterator[Step]:
        """The Gibbs chain at about `frames` steps spaced evenly in log(step): it changes fastest early on."""
        z = self.check_latent(z)
        total = self.config.gibbs_steps
        shown = set(np.unique(np.geomspace(1, total, frames - 1).round().astype(int)).tolist()) | {0}
        for index, (step, probs) in enumerate(s for s in self.chain(z, total) if s[0] in shown):
            image = probs.view(-1, 1, 28, 28)
            free = self.free_energy(image.flatten(1)).mean()
            yield Step(index, len(shown), image, f"Gibbs step {step}", info={"free energy": float(free)})

    # --- exact quantities for tiny RBMs (tests) -------------------------------------------------------------
    def log_partition_exact(self) -> torch.Tensor:
        """log Z by enumerating every hidden state: log sum_h exp(c.h) prod_i (1 + exp(b_i + W_i h)).
        Only for RBMs with at most 20 hidden units. For spins, whose hidden units are continuous, by enumerating
        every visible state: log sum_s exp(-F(s)), at most 20 visible units."""
        if self.spin:
            if self.config.visible > 20:
                raise ValueError(f"enumerating 2^{self.config.visible} visible states is not feasible")
            return torch.logsumexp(-self.free_energy(all_binary_states(self.config.visible).to(self.weight)), 0)
        n = self.config.hidden
        if n > 20:
            raise ValueError(f"enumerating 2^{n} hidden states is not feasible")
        states = all_binary_states(n).to(self.weight)
        log_terms = states @ self.hidden_bias + F.softplus(states @ self.weight.T + self.visible_bias).sum(1)
        return torch.logsumexp(log_terms, 0)
