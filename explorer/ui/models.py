"""The models the app serves: each loaded once, on first use, and shared read-only by every user.
Per-user state (gr.State) holds seeds and latents only, never a model."""

from __future__ import annotations

import threading

import torch

from ..base import LatentModel
from ..checkpoint import list_models, load_model


class ModelCache:
    def __init__(self, device: str | torch.device | None = None, names: list[str] | None = None) -> None:
        self.device = device
        self.names = names if names is not None else list_models()
        self._models: dict[str, LatentModel] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> LatentModel:
        if name not in self.names:
            raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(self.names)}")
        with self._lock:
            if name not in self._models:
                self._models[name] = load_model(name, self.device).requires_grad_(False)
            return self._models[name]
