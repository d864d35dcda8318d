"""The model families, one module each. Imported lazily: diffusers takes seconds to import, and a
checkpoint of another family should not pay for it."""

from __future__ import annotations

import importlib

FAMILIES = {
    "vae": "explorer.models.vae:VAE",
    "autoencoder": "explorer.models.autoencoder:Autoencoder",
    "cvae": "explorer.models.cvae:CVAE",
    "gan": "explorer.models.gan:GAN",
    "flow": "explorer.models.flow:Flow",
    "diffusion": "explorer.models.diffusion:Diffusion",
    "pixelcnn": "explorer.models.pixelcnn:PixelCNN",
    "rbm": "explorer.models.rbm:RBM",
    "classifier": "explorer.models.classifier:Classifier",
    "measurer": "explorer.models.measurer:Measurer",
}


def model_class(family: str):
    if family not in FAMILIES:
        raise KeyError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    module, name = FAMILIES[family].split(":")
    return getattr(importlib.import_module(module), name)
