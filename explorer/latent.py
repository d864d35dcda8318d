"""Paths and directions in latent space, the same for every family.

Interpolation: linear, or spherical (Shoemake 1985; White 2016, "Sampling Generative Networks"), which keeps
the norm typical of Gaussian latents so midpoints do not fade toward the prior's low-density centre.

Unsupervised directions, after GANSpace (Harkonen et al. 2020): decode many prior samples, take the
principal components of what comes out, and regress each component's scores back onto the latents to get
the latent direction that moves it. PCA on the latents themselves says nothing here, since a Gaussian
prior is isotropic; the decoded images carry the structure.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import torch
from safetensors import SafetensorError

from .base import LatentModel
from .checkpoint import CheckpointError, weights_sha256

T = TypeVar("T")


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation between flattened a and b; falls back to lerp when they are (anti)parallel."""
    shape = a.shape
    a_flat, b_flat = a.reshape(-1).double(), b.reshape(-1).double()
    cos = torch.dot(a_flat, b_flat) / (a_flat.norm() * b_flat.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if float(torch.sin(omega)) < 1e-6:
        return lerp(a, b, t)
    t = torch.as_tensor(t, dtype=torch.float64)
    out = (torch.sin((1 - t) * omega) * a_flat + torch.sin(t * omega) * b_flat) / torch.sin(omega)
    return out.to(a.dtype).reshape(shape)


def path(a: torch.Tensor, b: torch.Tensor, frames: int, mode: str = "slerp") -> torch.Tensor:
    """(frames, *latent_shape) from a to b inclusive."""
    if mode not in ("lerp", "slerp"):
        raise ValueError(f"mode must be 'lerp' or 'slerp', not {mode!r}")
    blend = slerp if mode == "slerp" else lerp
    return torch.stack([blend(a, b, float(t)) for t in torch.linspace(0, 1, frames)])


MAX_AXIS_ROWS = 32  # a vector latent with at most this many coordinates is traversed one coordinate per row


def traversal(z: torch.Tensor, principal: "Directions | None" = None, span: float = 2.0, steps: int = 7) -> tuple[torch.Tensor, list[str]]:
    """Latent traversals, the figure of the beta-VAE papers (Higgins et al. 2017, Fig. 1): one latent z (of the
    model's latent shape, no batch dimension) with one thing swept per row, -> ((rows, steps, *latent_shape), row names).
    A vector latent of at most MAX_AXIS_ROWS coordinates: row j sets coordinate j to each of `steps` values
    evenly from -span to +span (the prior's standard deviations), the others kept; any other latent (an image-shaped
    x_T, a 100-d GAN code): row k moves z along principal direction k by -span to +span of its latent standard
    deviation (`principal`, latent.principal_directions)."""
    z = z.detach()
    amounts = torch.linspace(-span, span, steps, dtype=z.dtype, device=z.device)
    if z.dim() == 1 and len(z) <= MAX_AXIS_ROWS:
        rows = z.repeat(len(z), steps, 1)
        for j in range(len(z)):
            rows[j, :, j] = amounts
        return rows, [f"z{j}" for j in range(len(z))]
    if principal is None:
        raise ValueError("a latent of this size is traversed along its principal directions: pass them")
    vectors, scale = principal.vectors.to(z), principal.scale.to(z)
    moves = amounts[None, :, None] * (scale[:, None, None] * vectors.flatten(1)[:, None, :])
    rows = z.reshape(1, 1, -1) + moves
    return rows.reshape(len(vectors), steps, *z.shape), [f"PC{k + 1}" for k in range(len(vectors))]


@dataclass
class Directions:
    """Unit latent directions (k, *latent_shape), the share of image variance each principal component
    explains, and the latent-space standard deviation of each direction's score over prior samples.
    `weights_sha256` names the checkpoint weights they were fitted for (None: a model not from a checkpoint)."""

    vectors: torch.Tensor
    explained_variance: torch.Tensor
    scale: torch.Tensor
    weights_sha256: str | None = None


@torch.inference_mode()
def principal_directions(model: LatentModel, k: int = 8, samples: int = 1000, seed: int = 0,
                         batch_size: int = 250) -> Directions:
    """GANSpace-style directions: 1. decode prior samples; 2. PCA of the images; 3. least-squares map from
    the components' scores to the latents, whose columns are the latent directions (Harkonen et al. 2020,
    Section 2.2, with images in place of early-layer features)."""
    k = min(k, math.prod(model.latent_shape))  # a 2-D latent has two directions to offer, not eight
    z = model.sample_latent(samples, seed=seed, temperature=model.default_temperature).cpu()
    images = model.decode_in_batches(z, batch_size)
    x = images.flatten(1).double()
    x = x - x.mean(0)
    _, singular, components = torch.linalg.svd(x, full_matrices=False)  # 2. rows of `components` are the PCs
    scores = x @ components[:k].T
    explained = singular[:k] ** 2 / (singular**2).sum()
    z_flat = z.flatten(1).double()
    z_flat = z_flat - z_flat.mean(0)
    mapping = torch.linalg.lstsq(scores, z_flat).solution  # 3. z ~ scores @ mapping, (k, d)
    vectors = mapping / mapping.norm(dim=1, keepdim=True).clamp_min(1e-12)
    scale = (z_flat @ vectors.T).std(0)
    return Directions(vectors.float().reshape(k, *model.latent_shape), explained.float(), scale.float(),
                      fitted_for(model))


def fitted_for(model) -> str | None:
    """The hash of the weights a model was loaded with: explorer.open's for a model opened from elsewhere, the
    checkpoint's for ours (None for a model built in memory)."""
    if model.weights_id is not None:
        return model.weights_id
    folder = getattr(model, "checkpoint_path", None)  # set by load_checkpoint; absent on a model built in memory
    return weights_sha256(folder) if folder is not None else None


def cache_root() -> Path:
    """The explorer's own folder for what it fits to models opened from elsewhere (never the model's folder,
    which is the user's): $LATENT_EXPLORER_CACHE, else ~/.cache/latent-explorer."""
    return Path(os.environ.get("LATENT_EXPLORER_CACHE") or Path.home() / ".cache" / "latent-explorer")


def cached_fit(model: LatentModel, read: Callable[[Path, str], T | None], fit: Callable[[], T],
               write: Callable[[T, Path], None]) -> T:
    """What `fit()` makes for a model opened from elsewhere, made once per weights and kept under cache_root()
    in a folder named by the weights' hash: `read(folder, hash)` gives a kept one (None where there is none, or
    it was fitted for another hash); a damaged one is fitted again. `write(value, folder)` writes the files
    under temporary names of this process and renames them into place, so a reader sees a whole set or none.
    A model whose weights are not known by hash is fitted afresh each time."""
    key = fitted_for(model)
    if key is None:
        return fit()
    folder = cache_root() / key
    try:
        found = read(folder, key)
    except (OSError, ValueError, KeyError, SafetensorError, CheckpointError):  # a damaged cache file: fit again
        found = None
    if found is not None:
        return found
    value = fit()
    folder.mkdir(parents=True, exist_ok=True)
    write(value, folder)
    return value


def partial_path(folder: Path, name: str) -> Path:
    """Where this process writes `name` before renaming it into place (see cached_fit)."""
    return folder / f".{name}.{os.getpid()}.tmp"


def cached_principal_directions(model: LatentModel, samples: int = 1000) -> Directions:
    """principal_directions of a model opened from elsewhere, fitted once per weights (see cached_fit)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    def read(folder: Path, key: str) -> Directions | None:
        path = folder / DIRECTIONS_FILE
        if not path.is_file():
            return None
        with safe_open(str(path), "pt") as handle:
            recorded = (handle.metadata() or {}).get("weights_sha256")
        if recorded != key:
            return None
        tensors = load_file(str(path))
        return Directions(tensors["vectors"], tensors["explained_variance"], tensors["scale"], recorded)

    def write(directions: Directions, folder: Path) -> None:
        save_directions(directions, folder, partial_path(folder, DIRECTIONS_FILE).name)
        partial_path(folder, DIRECTIONS_FILE).replace(folder / DIRECTIONS_FILE)

    return cached_fit(model, read, lambda: principal_directions(model, samples=samples), write)


def check_fitted_for(folder: Path, recorded: str | None, what: str, command: str) -> None:
    """Refuse a file of directions fitted for other weights than the checkpoint's in `folder`. A file without
    a hash (written before hashes were recorded) is refused too: nothing says which weights it belongs to,
    directions for other weights edit the wrong thing without a sign of it, and refitting is one command.
    Messages name the checkpoint by its folder's name, never by a path on the server."""
    if recorded is None:
        raise CheckpointError(f"{what} of {folder.name} do not say which weights they were fitted for; "
                              f"refit them: {command} {folder.name}")
    if recorded != weights_sha256(folder):
        raise CheckpointError(f"{what} of {folder.name} were fitted for other weights than its model.safetensors "
                              f"(the model was retrained or replaced); refit them: {command} {folder.name}")


DIRECTIONS_FILE = "pca_directions.safetensors"
DIRECTIONS_COMMAND = "python -m explorer.latent"  # what fits them, named in every refusal


def save_directions(directions: Directions, folder, file_name: str = DIRECTIONS_FILE) -> None:
    """Write pca_directions.safetensors, the weights hash they were fitted for in its metadata."""
    from safetensors.torch import save_file

    if directions.weights_sha256 is None:
        raise ValueError("these directions were fitted on a model not loaded from a checkpoint: nothing says "
                         "which weights they belong to, so they are not saved beside any")
    save_file({"vectors": directions.vectors.contiguous(), "explained_variance": directions.explained_variance,
               "scale": directions.scale}, str(Path(folder) / file_name),
              metadata={"weights_sha256": directions.weights_sha256})


def load_directions(folder) -> Directions | None:
    """The principal directions shipped beside the checkpoint in `folder`, None where there are none;
    refused (CheckpointError, saying what to run) where they were fitted for other weights or say not which."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    folder = Path(folder)
    path = folder / DIRECTIONS_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as handle:
        recorded = (handle.metadata() or {}).get("weights_sha256")
    check_fitted_for(folder, recorded, "the principal directions", DIRECTIONS_COMMAND)
    tensors = load_file(str(path))
    return Directions(tensors["vectors"], tensors["explained_variance"], tensors["scale"], recorded)


def main(argv: list[str] | None = None) -> None:
    """python -m explorer.latent [NAME ...]: fit and store each checkpoint's principal directions."""
    import argparse

    from .checkpoint import list_models, resolve
    from .open import load_model

    parser = argparse.ArgumentParser(prog="python -m explorer.latent", description=main.__doc__)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args(argv)
    for name in args.names or list_models():
        model = load_model(name)
        directions = principal_directions(model, k=args.k, samples=args.samples)
        save_directions(directions, resolve(name))
        shares = ", ".join(f"{v:.1%}" for v in directions.explained_variance)
        print(f"{name}: {len(directions.vectors)} directions from {args.samples} samples; image variance explained {shares}")


if __name__ == "__main__":
    main()


@dataclass
class LatentMap:
    """Images placed on a plane of latent space: `coords` (N, 2) for each image, and the plane itself, so
    any point on it decodes: latent = origin + u * axes[0] + v * axes[1]. For a 2-D latent the plane is the
    latent space (origin 0, axes the unit vectors); otherwise the top two principal components of the codes,
    with `explained` the share of the codes' variance each carries."""

    coords: torch.Tensor
    origin: torch.Tensor
    axes: torch.Tensor
    explained: torch.Tensor

    def latent(self, points: torch.Tensor) -> torch.Tensor:
        """(M, 2) points on the plane -> (M, d) latents."""
        return self.origin + points.to(self.axes) @ self.axes


@torch.inference_mode()
def latent_map_steps(model: LatentModel, images: torch.Tensor, batch_size: int = 100) -> Iterator[tuple[int, LatentMap | None]]:
    """latent_map a batch at a time: yields (images encoded so far, None) after each batch, then (all of them,
    the map). A caller that drives it (a Gradio generator) can report progress, and be stopped, between batches."""
    chunks = []
    for i in range(0, len(images), batch_size):
        chunks.append(model.encode(images[i:i + batch_size].to(model.device)).flatten(1).cpu())
        yield min(i + batch_size, len(images)), None
    codes = torch.cat(chunks).double()
    if codes.shape[1] == 2:
        origin, axes, explained = torch.zeros(2, dtype=codes.dtype), torch.eye(2, dtype=codes.dtype), torch.ones(2)
    else:
        origin = codes.mean(0)
        _, singular, vh = torch.linalg.svd(codes - origin, full_matrices=False)
        axes, explained = vh[:2], (singular.pow(2) / singular.pow(2).sum())[:2]
    coords = (codes - origin) @ axes.T
    yield len(images), LatentMap(coords.float(), origin.float(), axes.float(), explained.float())


def latent_map(model: LatentModel, images: torch.Tensor, batch_size: int = 500) -> LatentMap:
    """Encode `images` and lay them on a plane: the latent itself when it is 2-D, else its PCA projection."""
    *_, (_, mapped) = latent_map_steps(model, images, batch_size)
    return mapped
