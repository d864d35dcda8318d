"""Latent Explorer: one interface over VAE, GAN, normalizing-flow and diffusion models, the shipped ones of
digits and your own.

    import explorer
    explorer.list_models()
    m = explorer.load_model("ddpm-mnist")      # device=None: cuda, else mps, else cpu
    m = explorer.load_model("path/to/ddpm-butterflies")   # also: a Hugging Face cache id, file.py:function
    z = m.sample_latent(8, seed=0)
    x = m.decode(z)                            # (8, 1, 28, 28) in [0, 1]
    explorer.measure(x)["thickness"]           # Morpho-MNIST measures and the classifier's digit probabilities
    explorer.edit(m, z, {"thickness": 1.0}, lock=("slant",))   # +1 = one standard deviation of thickness
"""

from .base import LatentModel, Step, pick_device
from .checkpoint import CheckpointError, list_models, save_checkpoint
from .models.adapted import Adapter
from .open import OpenError, load_model
from .data import DataError, load_mnist, prepare_digit

__all__ = ["edit", "measure", "Adapter", "OpenError", "LatentModel", "Step", "pick_device", "CheckpointError", "list_models", "load_model", "save_checkpoint",
           "DataError", "load_mnist", "prepare_digit"]


def __getattr__(name: str):
    # explorer.measure and explorer.edit load scipy and scikit-image only when first used (PEP 562), which
    # also lets `python -m explorer.attributes` run without importing itself twice
    if name in ("edit", "measure"):
        from . import attributes

        return getattr(attributes, name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
