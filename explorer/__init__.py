"""Latent Explorer: one interface over VAE, GAN, normalizing-flow and diffusion models of digits.

    import explorer
    explorer.list_models()
    m = explorer.load_model("ddpm-mnist")      # device=None: cuda, else mps, else cpu
    z = m.sample_latent(8, seed=0)
    x = m.decode(z)                            # (8, 1, 28, 28) in [0, 1]
"""

from .base import LatentModel, Step, pick_device
from .checkpoint import CheckpointError, list_models, load_model, save_checkpoint
from .data import DataError, load_mnist, prepare_digit

__all__ = ["LatentModel", "Step", "pick_device", "CheckpointError", "list_models", "load_model", "save_checkpoint",
           "DataError", "load_mnist", "prepare_digit"]
