"""The models the app serves: each loaded once, on first use, and shared read-only by every user, with what
is derived from them (edit directions, latent maps) cached beside them. Per-user state (gr.State) holds seeds
and latents only, never a model.

Locking: one short lock guards the dictionaries; each model and each derived artefact has a lock of its own,
held only while that one thing is built. Loading the flow or encoding its latent map (tens of seconds) never
blocks a request for a model that is already loaded."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, TypeVar

import numpy as np
import torch

from .. import anomaly
from ..attributes import AttributeDirections, cached_attribute_directions, directions_for, measures_of
from ..base import LatentModel, pick_device
from ..checkpoint import list_models, read_record, record_domain, resolve
from ..open import load_model
from ..domains import domain_of
from ..latent import Directions, LatentMap, cached_principal_directions, latent_map, load_directions, principal_directions
from ..metrics import load_classifier
from ..models import FAMILIES, model_class

DECODE_CACHE = 64
# prior samples an opened model's principal directions are fitted on when each decode is a DDIM run (the
# shipped models use 1000): 8 components of the images settle with a few hundred, at a fifth of the wait
OPENED_SAMPLES = 200
OPENED_CALIBRATION = 24  # and the latents each attribute's step is calibrated on (100 for the shipped ones)
T = TypeVar("T")


class CountingModel:
    """A model seen through a fit: counts the images decoded (`report(count)` after each decode), and keeps the
    last batch `decode_in_batches` decoded, since the principal and the attribute fit both begin by decoding the
    same prior samples (seed 0). Everything else is the model's own; the model itself is not touched."""

    def __init__(self, model: LatentModel, report: Callable[[int], None]) -> None:
        self._model, self._report, self.decoded = model, report, 0
        self._last: tuple[bytes, torch.Tensor] | None = None

    def __getattr__(self, name):
        return getattr(self._model, name)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        images = self._model.decode(z)
        self.decoded += len(z)
        self._report(self.decoded)
        return images

    def decode_in_batches(self, z: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
        key = z.detach().cpu().numpy().tobytes()
        if self._last is None or self._last[0] != key:
            # small batches for a slow decoder, so the count moves while a DDIM run of 250 would take minutes
            size = min(batch_size, 25) if self._model.decode_is_slow else batch_size
            self._last = (key, torch.cat([self.decode(chunk.to(self._model.device)).cpu() for chunk in z.split(size)]))
        return self._last[1].clone()


class ModelCache:
    def __init__(self, device: str | torch.device | None = None, names: list[str] | None = None,
                 opened: dict[str, LatentModel] | None = None) -> None:
        """The shipped checkpoints `names` (None: all of them), loaded on first use, and `opened`: models the
        server's command line opened (explorer.open), already loaded, served under these names after them."""
        self.device = pick_device(device)
        names = list_models() if names is None else names
        self._records = {name: read_record(resolve(name)) for name in names}  # read once, no weights
        self._opened = {name: model.requires_grad_(False) for name, model in (opened or {}).items()}
        self.families = {name: record["family"] for name, record in self._records.items()}
        self.families |= {name: model.family for name, model in self._opened.items()}
        # the digits first (the app opens on them), then the shapes world; within each, VAE, GAN, flow, diffusion:
        # the order the field teaches them, and the app lists them; then the user's own
        self.names = sorted(names, key=lambda n: (record_domain(self._records[n]) != "digits",
                                                  list(FAMILIES).index(self.families[n]), n)) + list(self._opened)
        self._built: dict[tuple[str, str], object] = {}  # ("model" | "directions" | ..., name) -> the thing
        self._building: dict[tuple[str, str], threading.Lock] = {}
        self._decoded: OrderedDict[tuple, torch.Tensor] = OrderedDict()  # the last few decodes (see decode)
        self._guard = threading.Lock()  # held for dictionary reads and writes only, never while building
        self._fitting: dict[str, dict] = {}  # opened model -> how far its directions' fit has got (fit_progress)
        self._counting: dict[str, CountingModel] = {}
        self._background: dict[str, threading.Thread] = {}

    def record(self, name: str) -> dict:
        """A shipped checkpoint's config.json record (how it was made, its measured figures); for an opened model
        the record an exported pipeline carries (explorer.export), else {}."""
        if name in self._opened:
            return getattr(self._opened[name], "checkpoint_record", {})
        return self._records.get(name, {})

    def opened(self) -> list[str]:
        """The names of the models the server's command line opened (served after the shipped ones)."""
        return list(self._opened)

    def image_shape(self, name: str) -> tuple[int, int, int]:
        """(channels, height, width) of the model's images, without loading its weights."""
        if name in self._opened:
            return tuple(self._opened[name].image_shape)
        # a config that sets its size says it (the shapes models: 3x32x32); the class's default is the digits'
        return tuple(self._records[name].get("config", {}).get("image_shape") or self.model_class(name).image_shape)

    def domain(self, name: str) -> str | None:
        """The kind of data the model draws (explorer.domains), or None for one opened from elsewhere."""
        return self._opened[name].domain if name in self._opened else record_domain(self._records[name])

    def _once(self, kind: str, name: str, make: Callable[[], T]) -> T:
        """`make()` run once per (kind, name), under that pair's own lock; later callers get the same object."""
        key = (kind, name)
        with self._guard:
            if key in self._built:
                return self._built[key]
            lock = self._building.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._built:  # built by whoever held the lock before us
                    return self._built[key]
            value = make()
            with self._guard:
                self._built[key] = value
            return value

    def device_for(self, name: str) -> torch.device:
        """The server's device, except for a model that computes in float64 on Apple's MPS (which has no float64):
        that one runs on the CPU (see LatentModel.needs_float64)."""
        if self.device.type == "mps" and self.model_class(name).needs_float64:
            return torch.device("cpu")
        return self.device

    def get(self, name: str) -> LatentModel:
        if not isinstance(name, str) or name not in self.names:
            raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(self.names)}")
        # frozen: no request may train or accumulate gradients into a shared model (GAN inversion and the digit
        # hold differentiate with respect to the latent only)
        if name in self._opened:
            return self._opened[name]
        return self._once("model", name, lambda: load_model(name, self.device_for(name)).requires_grad_(False))

    def directions(self, name: str) -> Directions:
        """Principal latent directions: shipped beside the checkpoint, else fitted once on first use (an opened
        model's in the explorer's own cache, see latent.cached_fit)."""
        model = self.get(name)

        def make() -> Directions:
            if name in self._opened:
                found = cached_principal_directions(self._counted(name), samples=self._opened_samples(name))
            else:
                found = load_directions(resolve(name)) or principal_directions(model)
            return Directions(*(t.to(model.device) for t in (found.vectors, found.explained_variance, found.scale)))
        return self._once("directions", name, make)

    def attributes(self, name: str) -> AttributeDirections:
        """Named attribute directions: shipped beside the checkpoint, else fitted once on first use (an opened
        model's to its domain's measures, in the explorer's own cache, labelling its principal directions)."""
        model = self.get(name)
        if name not in self._opened:
            return self._once("attributes", name, lambda: directions_for(model))

        def make() -> AttributeDirections:
            found = cached_attribute_directions(self._counted(name), self._opened_samples(name),
                                                self._opened_calibration(name), principal=self.directions(name))
            return found.to(model.device)
        return self._once("attributes", name, make)

    def _opened_samples(self, name: str) -> int:
        return OPENED_SAMPLES if self._opened[name].decode_is_slow else 1000

    def _opened_calibration(self, name: str) -> int:
        return OPENED_CALIBRATION if self._opened[name].decode_is_slow else 100

    def _counted(self, name: str) -> CountingModel:
        """The opened model seen through one CountingModel for all its fits, whose count fit_progress reads."""
        def report(decoded: int) -> None:
            with self._guard:
                self._fitting.setdefault(name, {"began": time.perf_counter()})["decoded"] = decoded

        with self._guard:
            return self._counting.setdefault(name, CountingModel(self._opened[name], report))

    def fitted(self, name: str) -> bool:
        """Whether both kinds of edit direction of `name` are built (Edit opens it without waiting)."""
        return self.built("directions", name) is not None and self.built("attributes", name) is not None

    def fit_progress(self) -> str:
        """A line on how far the opened models' background fits have got ("" when none is under way): images
        decoded of the most it may take (a fit kept in the cache decodes none), and the time so far."""
        from .common import time_left  # (common imports this module)

        lines = []
        for name in self._opened:
            with self._guard:
                state = dict(self._fitting.get(name, {}))
                started = name in self._fitting or self._background.get(name) is not None
            if not started or self.fitted(name):
                continue
            model = self._opened[name]
            samples, calibration = self._opened_samples(name), self._opened_calibration(name)
            # the attribute fit's probes: two decodes per measure and calibration latent
            total = samples + 2 * calibration * len(measures_of(model).columns)
            decoded = state.get("decoded", 0)
            elapsed = time.perf_counter() - state.get("began", time.perf_counter())
            left = time_left(decoded, total, elapsed) if decoded >= 25 else ""  # a rate from the first batch on
            lines.append(f"Fitting the edit directions of **{name}** in the background: {decoded} of at most {total} "
                         f"images decoded, {elapsed:.0f} s so far{', ' + left + ' at most' if left else ''}. Its Edit "
                         "sliders open when it finishes; every other model works meanwhile.")
        return " ".join(lines)

    def fit_opened_in_background(self) -> list[threading.Thread]:
        """Start fitting each opened model's edit directions (principal, then named attributes) in a thread of
        its own, so that they are ready (or under way) before anyone opens the Edit tab on it: for a many-step
        decoder the fit takes minutes on a CPU, and a first Edit request then waits only for what is left of it
        (`_once` makes it one fit whoever asks; `fit_progress` says how far it has got). A fit found in the
        explorer's cache returns at once. -> the threads."""
        def fit(name: str) -> None:
            began = time.perf_counter()
            self.attributes(name)  # which fits the principal directions first: the attributes' labels need them
            print(f"* Edit directions of {name} ready ({time.perf_counter() - began:.0f} s)", flush=True)

        threads = [threading.Thread(target=fit, args=(name,), daemon=True, name=f"fit-{name}") for name in self._opened]
        with self._guard:
            self._background.update(zip(self._opened, threads))
        for thread in threads:
            thread.start()
        return threads

    def fitting_in_background(self, name: str) -> bool:
        """Whether a background fit of `name` is under way (then Edit shows its progress instead of waiting)."""
        with self._guard:
            thread = self._background.get(name)
        return thread is not None and thread.is_alive() and not self.fitted(name)

    def decode(self, name: str, z: torch.Tensor) -> torch.Tensor:
        """model.decode(z), remembering the last DECODE_CACHE results: a slider dragged back and forth, Reset
        and an edited interpolation end revisit the same latents, and for diffusion each decode is a DDIM run.
        Every caller gets a tensor of its own, so no caller can change what another (or the cache) holds."""
        key = (name, tuple(z.shape), z.detach().cpu().numpy().tobytes())
        with self._guard:
            if key in self._decoded:
                self._decoded.move_to_end(key)
                return self._decoded[key].clone()
        image = self.get(name).decode(z)
        with self._guard:
            self._decoded[key] = image.clone()
            while len(self._decoded) > DECODE_CACHE:
                self._decoded.popitem(last=False)
        return image

    def latent_map(self, name: str) -> tuple[LatentMap, np.ndarray]:
        """The held-out digits on a plane of this model's latent space, and their classes; made once."""
        model = self.get(name)

        def make() -> tuple[LatentMap, np.ndarray]:
            domain = domain_of(model)
            return latent_map(model, domain.heldout()), domain.heldout_labels()
        return self._once("latent map", name, make)

    def heldout_scores(self, name: str) -> np.ndarray:
        """This model's anomaly scores (explorer.anomaly) of its domain's held-out images; computed once."""
        model = self.get(name)
        return self._once("anomaly scores", name, lambda: anomaly.scores(model, domain_of(model).heldout()))

    def built(self, kind: str, name: str):
        """What `kind` (e.g. "latent map") of `name` this cache holds, or None; never builds it (a view that builds
        the thing step by step, so it can be stopped, asks first)."""
        with self._guard:
            return self._built.get((kind, name))

    def keep(self, kind: str, name: str, value: T) -> T:
        """Hold `value` as `kind` of `name`, built outside the cache; whoever finished first is kept (the same
        thing either way), and that one is returned."""
        return self._once(kind, name, lambda: value)

    def classifier(self, of=None):
        """The classifier of a domain with classes (`of`: its Domain, or its Measures; None: the digits'), on the
        server's device like every model (`--device`)."""
        return load_classifier(self.device) if of is None else of.classifier(self.device)

    def model_class(self, name: str) -> type[LatentModel] | LatentModel:
        """What to read a served model's capability flags from without loading weights: its class, or for an
        opened model the model itself (an adapter's flags are its own: whether it encodes, say)."""
        if name in self._opened:
            return self._opened[name]
        return model_class(self.families[name])

    def names_where(self, flag: str) -> list[str]:
        """Models with a capability flag set (no weights are loaded to ask)."""
        return [n for n in self.names if getattr(self.model_class(n), flag)]
