"""The digits domain: MNIST, the world every shipped model was trained on. What it knows lives in
explorer.data (the MNIST reader, MNIST-style preparation of an upload), explorer.metrics (the evaluation
classifier) and explorer.attributes (the Morpho-MNIST measures); this gathers them behind the Domain face the
views ask."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..data import load_mnist, prepare_digit, to_tensor



class Digits:
    name = "digits"
    has_classes = True
    has_heldout = True
    noun, item, class_kind = "digits", "digit", "digit"  # its images, one of them, one of its classes
    class_names = tuple(str(k) for k in range(10))
    about = "handwritten digits (the same 12,000 MNIST digits)"  # what its models were trained on, for the header

    def classifier(self, device):
        """The shipped MNIST classifier on `device`."""
        from ..metrics import load_classifier

        return load_classifier(device)

    def captions(self, images: torch.Tensor, classifier) -> list[str]:
        """The digit the classifier reads in each image, and how sure it is: "7 98%"."""
        probs, _ = classifier.predict(images.cpu())
        return [f"{int(p.argmax())} {float(p.max()):.0%}" for p in probs]

    def heldout(self) -> torch.Tensor:
        """The 2,000 held-out MNIST digits (explorer.data's fixed split), (N, 1, 28, 28) in [0, 1]."""
        return _heldout()

    def heldout_labels(self) -> np.ndarray:
        """The held-out digits' classes, in heldout()'s order."""
        return load_mnist("heldout").labels

    def prepare_upload(self, source, image_shape=(1, 28, 28)) -> torch.Tensor:
        """An upload made MNIST-style (explorer.data.prepare_digit): (1, 28, 28) floats in [0, 1]."""
        return torch.from_numpy(prepare_digit(source).astype(np.float32) / 255).reshape(1, 28, 28)

    def measure(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        from ..attributes import measure

        return measure(images)

    def edit_measures(self, image_shape=(1, 28, 28)):
        """Morpho-MNIST's measures and the classifier's ten digits (explorer.attributes.DIGIT_MEASURES)."""
        from ..attributes import DIGIT_MEASURES

        return DIGIT_MEASURES


@lru_cache(maxsize=1)
def _heldout() -> torch.Tensor:
    return to_tensor(load_mnist("heldout").images)


DOMAIN = Digits()
