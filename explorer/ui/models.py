"""The models the app serves: each loaded once, on first use, and shared read-only by every user, with what
is derived from them (edit directions) cached beside them. Per-user state (gr.State) holds seeds and
latents only, never a model."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch

from ..attributes import AttributeDirections, directions_for
from ..base import LatentModel
from ..checkpoint import list_models, load_model, read_record, resolve
from ..data import load_mnist, to_tensor
from ..latent import Directions, LatentMap, latent_map, load_directions, principal_directions
from ..metrics import load_classifier
from ..models import FAMILIES, model_class


DECODE_CACHE = 64


class ModelCache:
    def __init__(self, device: str | torch.device | None = None, names: list[str] | None = None) -> None:
        self.device = device
        names = list_models() if names is None else names
        self.families = {name: read_record(resolve(name))["family"] for name in names}  # read once, no weights
        # VAE, GAN, flow, diffusion: the order the field teaches them, and the app lists them
        self.names = sorted(names, key=lambda n: (list(FAMILIES).index(self.families[n]), n))
        self._models: dict[str, LatentModel] = {}
        self._directions: dict[str, Directions] = {}
        self._maps: dict[str, tuple[LatentMap, np.ndarray]] = {}
        self._decoded: OrderedDict[tuple, torch.Tensor] = OrderedDict()  # the last few decodes (see decode)
        self._lock = threading.Lock()

    def get(self, name: str) -> LatentModel:
        if not isinstance(name, str) or name not in self.names:
            raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(self.names)}")
        with self._lock:
            if name not in self._models:
                self._models[name] = load_model(name, self.device).requires_grad_(False)
            return self._models[name]

    def directions(self, name: str) -> Directions:
        """Principal latent directions: shipped beside the checkpoint, else fitted once on first use."""
        model = self.get(name)
        with self._lock:
            if name not in self._directions:
                found = load_directions(resolve(name)) or principal_directions(model)
                self._directions[name] = Directions(*(t.to(model.device) for t in
                                                      (found.vectors, found.explained_variance, found.scale)))
            return self._directions[name]

    def attributes(self, name: str) -> AttributeDirections:
        """Named attribute directions: shipped beside the checkpoint, else fitted once on first use."""
        model = self.get(name)
        with self._lock:
            return directions_for(model)

    def decode(self, name: str, z: torch.Tensor) -> torch.Tensor:
        """model.decode(z), remembering the last DECODE_CACHE results: a slider dragged back and forth, Reset
        and an edited interpolation end revisit the same latents, and for diffusion each decode is a DDIM run."""
        key = (name, tuple(z.shape), z.detach().cpu().numpy().tobytes())
        with self._lock:
            if key in self._decoded:
                self._decoded.move_to_end(key)
                return self._decoded[key]
        image = self.get(name).decode(z)
        with self._lock:
            self._decoded[key] = image
            while len(self._decoded) > DECODE_CACHE:
                self._decoded.popitem(last=False)
        return image

    def latent_map(self, name: str) -> tuple[LatentMap, np.ndarray]:
        """The held-out digits on a plane of this model's latent space, and their classes; made once."""
        model = self.get(name)
        with self._lock:
            if name not in self._maps:
                heldout = load_mnist("heldout")
                self._maps[name] = (latent_map(model, to_tensor(heldout.images)), heldout.labels)
            return self._maps[name]

    def classifier(self):
        return load_classifier(str(self.device) if self.device is not None else None)

    def names_where(self, flag: str) -> list[str]:
        """Models with a capability flag set (flags are class attributes: no weights are loaded to ask)."""
        return [n for n in self.names if getattr(model_class(self.families[n]), flag)]
