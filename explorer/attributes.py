"""Named latent attributes: what an image measures, which latent direction moves each measure, and edits
along those directions with locks.

    import explorer
    figures = explorer.measure(images)            # images (N, 1, 28, 28) in [0, 1]; figures["thickness"] (N,)
    z2 = explorer.edit(model, z, {"thickness": 1.0}, lock=("slant",))   # +1 = one standard deviation

The fitting and the edits are the same for every domain; what is measured is the model's domain's
(`Measures`, from `domain.edit_measures`): for the digits the measures below and the classifier's ten digits,
for a model whose data the explorer does not know the measures any image has (explorer.domains.generic).

Digit measures: Morpho-MNIST morphometrics (Castro et al. 2019, Section 3.1): stroke thickness, slant, width,
height and area from the binarised digit, plus the shipped classifier's digit probabilities.

Units: thickness, width and height in pixels; slant in degrees, positive when the digit leans right; area in
pixels. All of it is vectorised over the batch: thousands of digits take well under a second (the whole batch
is tiled onto one canvas, so skeletonisation and the distance transform each run once).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

from .checkpoint import CheckpointError
from .latent import cached_fit, check_fitted_for, fitted_for, partial_path
from .metrics import load_classifier

ATTRIBUTES = ("thickness", "slant", "width", "height", "area")
UNITS = {"thickness": "px", "slant": "deg", "width": "px", "height": "px", "area": "px"}
THRESHOLD = 0.5   # binarisation level, as in Morpho-MNIST
UPSCALE = 2       # measured on a 2x upscaled image: thickness at 28x28 alone is too coarse (Morpho-MNIST uses 4)
BOUND_FRAC = 0.02  # width and height ignore this share of ink at each end, so a stray pixel does not count


@dataclass(frozen=True)
class Measures:
    """What a domain's images are measured by for named edits: the continuous measures `names` (in `units`),
    those the Edit tab offers sliders for (the rest are read out only), and, for a domain with classes, the
    class names ("digit 0", ...), each read as the domain classifier's log-odds in a column after the
    continuous ones (the scale a linear classifier fits). A measure in `circular` is an angle with that period
    (hue, 360 degrees): its differences are taken the short way round."""

    names: tuple[str, ...]
    units: dict
    sliders: tuple[str, ...]
    continuous: Callable  # images (N, C, H, W) in [0, 1] -> {name: (N,) floats}, no classifier
    classes: tuple[str, ...] = ()
    circular: dict = field(default_factory=dict)
    # device -> the domain's classifier there: a module whose forward maps images (N, C, H, W) in [0, 1] to
    # class logits (N, classes), and whose predict gives (probabilities, features); for a domain with classes
    load_classifier: Callable | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.names, *self.classes)

    def table(self, images, classifier=None, columns=None) -> np.ndarray:
        """(N, len(columns)) of the measures in `columns` (indices into `self.columns`; None: all), with the
        classifier run only when a class's column is asked for: a lock on slant needs the morphometrics alone,
        and the classifier was half of each measure (a locked edit fell from 4.7 to 3.0 ms on this CPU)."""
        columns = list(range(len(self.columns)) if columns is None else columns)
        figures = self.continuous(images)
        out = np.zeros((len(images), len(columns)))
        wanted = [k for k, c in enumerate(columns) if c >= len(self.names)]
        if wanted:
            probs = np.clip(self.probabilities(images, classifier), 1e-6, 1 - 1e-6)
            log_odds = np.log(probs) - np.log1p(-probs)
            for k in wanted:
                out[:, k] = log_odds[:, columns[k] - len(self.names)]
        for k, c in enumerate(columns):
            if c < len(self.names):
                out[:, k] = figures[self.names[c]]
        return out

    def classifier(self, device):
        """The domain's classifier on `device` (one instance per device, kept by its loader)."""
        if self.load_classifier is None:
            raise ValueError("this domain has no classes, so no classifier")
        return self.load_classifier(device)

    def probabilities(self, images, classifier=None) -> np.ndarray:
        """(N, classes) the domain classifier's probabilities, run where the images are."""
        if not isinstance(images, torch.Tensor):
            images = torch.as_tensor(np.asarray(images, np.float32))
        if images.dim() == 3:  # (N, H, W): grey images without their channel axis
            images = images.unsqueeze(1)
        if classifier is None:
            classifier = self.classifier(images.device)
        return classifier.predict(images.float())[0].numpy().astype(np.float64)

    def read_class(self, images, classifier=None) -> np.ndarray:
        """The class the classifier reads in each image."""
        return self.probabilities(images, classifier).argmax(axis=1)

    def difference(self, a: np.ndarray, b: np.ndarray, columns=None) -> np.ndarray:
        """a - b for table columns `columns` (None: all), circular measures the short way round."""
        columns = list(range(len(self.columns)) if columns is None else columns)
        change = np.asarray(a, np.float64) - np.asarray(b, np.float64)
        for k, c in enumerate(columns):
            period = self.circular.get(self.columns[c])
            if period:
                change[..., k] = (change[..., k] + period / 2) % period - period / 2
        return change

    def centred(self, table: np.ndarray) -> np.ndarray:
        """The table with each circular column as the deviation from its circular mean, so that its spread
        and a regression on it mean what they do for a linear measure."""
        table = table.copy()
        for c, name in enumerate(self.columns):
            period = self.circular.get(name)
            if period:
                angle = table[:, c] * (2 * math.pi / period)
                mean = math.atan2(np.sin(angle).mean(), np.cos(angle).mean()) * period / (2 * math.pi)
                table[:, c] = self.difference(table[:, c:c + 1], np.full((len(table), 1), mean), [c])[:, 0]
        return table


def _as_array(images) -> np.ndarray:
    array = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, np.float32)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise ValueError(f"images must be (N, 1, H, W) or (N, H, W), got shape {tuple(array.shape)}")
    return array


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Per row of `values` (N, P), the q-quantiles of the values weighted by `weights` (N, P): one sort."""
    order = np.argsort(values, axis=1)
    sorted_values = np.take_along_axis(values, order, axis=1)
    cumulative = np.cumsum(np.take_along_axis(weights, order, axis=1), axis=1)
    rows = np.arange(len(values))
    return [sorted_values[rows, (cumulative < q * cumulative[:, -1:]).sum(axis=1).clip(0, values.shape[1] - 1)]
            for q in qs]


def _thickness(ink: np.ndarray) -> np.ndarray:
    """Morpho-MNIST thickness: twice the mean distance from skeleton pixels to the nearest background pixel.

    1. upscale the binary digits and tile them onto one canvas with a background border round each, so one
    skeletonisation serves the whole batch; 2. the nearest background pixel to any ink pixel touches the ink
    (a background pixel with only background neighbours has a neighbour nearer the ink), so a k-d tree of
    those boundary pixels gives exact Euclidean distances for the skeleton alone, far faster than a distance
    transform of the whole canvas; the border keeps each digit's nearest background inside its own tile;
    3. average the distances over each digit's skeleton."""
    n, h, w = ink.shape
    big = ink.repeat(UPSCALE, axis=1).repeat(UPSCALE, axis=2)  # 1.
    th, tw = h * UPSCALE + 2, w * UPSCALE + 2
    cols = max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / cols))
    tiles = np.zeros((rows * cols, th, tw), bool)
    tiles[:n, 1:-1, 1:-1] = big
    canvas = tiles.reshape(rows, cols, th, tw).transpose(0, 2, 1, 3).reshape(rows * th, cols * tw)
    skeleton = np.argwhere(skeletonize(canvas))
    boundary = np.argwhere(ndimage.binary_dilation(canvas, np.ones((3, 3), bool)) & ~canvas)  # 2.
    if len(skeleton) == 0 or len(boundary) == 0:
        return np.zeros(n)
    distance, _ = cKDTree(boundary).query(skeleton)
    tile = skeleton[:, 0] // th * cols + skeleton[:, 1] // tw  # 3.
    sums = np.bincount(tile, weights=distance, minlength=n)[:n]
    counts = np.bincount(tile, minlength=n)[:n]
    return np.where(counts > 0, 2 * sums / np.maximum(counts, 1) / UPSCALE, 0.0)


def morphometrics(images) -> dict[str, np.ndarray]:
    """Thickness, slant, width, height and area of each digit (no classifier). Blank images measure 0."""
    array = _as_array(images)
    n, h, w = array.shape
    ink = array >= THRESHOLD
    weights = ink.reshape(n, -1).astype(np.float64)
    mass = weights.sum(axis=1)
    safe = np.maximum(mass, 1)
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    y, x = ys.reshape(1, -1), xs.reshape(1, -1)
    # slant from second moments (Morpho-MNIST Eq. 2): the horizontal shear that best explains how x varies
    # with y; rows grow downwards, so a right-leaning digit has x falling as y rises, and slant > 0
    y_mean = (weights * y).sum(1, keepdims=True) / safe[:, None]
    x_mean = (weights * x).sum(1, keepdims=True) / safe[:, None]
    mu11 = (weights * (x - x_mean) * (y - y_mean)).sum(1)
    mu02 = (weights * (y - y_mean) ** 2).sum(1)
    shear = np.where(mu02 > 0, mu11 / np.maximum(mu02, 1e-12), 0.0)
    slant = np.degrees(np.arctan(-shear))
    # width across the de-slanted digit, height along it: robust extents of the ink (+1 for the pixel itself)
    x_unslanted = x - shear[:, None] * (y - y_mean)
    left, right = _weighted_quantiles(x_unslanted, weights, (BOUND_FRAC, 1 - BOUND_FRAC))
    top, bottom = _weighted_quantiles(np.broadcast_to(y, weights.shape), weights, (BOUND_FRAC, 1 - BOUND_FRAC))
    width, height = right - left + 1, bottom - top + 1
    blank = mass == 0
    figures = {"thickness": _thickness(ink), "slant": slant, "width": width, "height": height, "area": mass}
    return {k: np.where(blank, 0.0, v).astype(np.float64) for k, v in figures.items()}


def measure(images, classifier=None) -> dict[str, np.ndarray]:
    """Morphometrics plus the classifier's digit probabilities ("probs", (N, 10)) and the digit it reads
    ("digit", (N,)). `classifier` defaults to the shipped MNIST classifier on the images' own device (the CPU
    for numpy arrays): the classifier runs where the images are, never on a GPU the caller did not choose."""
    figures = morphometrics(images)
    figures["probs"] = DIGIT_MEASURES.probabilities(images, classifier)
    figures["digit"] = figures["probs"].argmax(axis=1)
    return figures


# ---------------------------------------------------------------------------------------------------------
# Directions: fitted the same way for every family (InterFaceGAN, Shen et al. 2020, Section 2; TL-GAN)

SLIDERS = ("thickness", "slant", "width", "height")  # the continuous attributes the Edit tab offers
DIGITS = tuple(f"digit {k}" for k in range(10))        # "toward digit k": a linear classifier per digit
# the digits domain's measures (explorer.domains.digits serves them): the five morphometrics, four of them sliders,
# then the log-odds of each digit
DIGIT_MEASURES = Measures(ATTRIBUTES, UNITS, SLIDERS, morphometrics, DIGITS, load_classifier=load_classifier)
ATTRIBUTES_FILE, ATTRIBUTES_RECORD = "attributes.safetensors", "attributes.json"
MIN_ALIGNMENT = 0.1  # a locked edit keeps at least this much of its own direction, else it is refused
# A measured slope is usable (for the calibrated step, and as a lock's Newton step) when
# 1. moving half a prior radius R along the direction, the calibration probes' whole span at most (they sit at
#    +-trial <= R/4), changes the attribute by at least a tenth of its SD: |slope| * R / 2 >= sd / 10, that is
#    one SD within 5 radii. Below that, dividing by the slope gives a step of tens of radii, and on the fits
#    shipped before this floor every slope under it was under 0.4 of its standard error over the probes
#    (ae2d-mnist thickness, area, digit 2; vae2d-mnist digits 3 and 8): a coin toss for its sign;
# 2. (where the fit measured it) the slope is at least SIGN_SE standard errors of the mean over the probes
#    from zero, so the sign of the step, which way +1 goes, is the decoder's and not the probes' noise (two
#    standard errors: a slope that is really zero passes about one time in twenty).
USABLE_SLOPE_SD_PER_HALF_RADIUS = 0.1
SIGN_SE = 2.0
LOCK_REACH = 1.0  # a lock's summed corrections move a latent at most this many times the edit's length (step 4)
# step 4's Gram matrix holds the edited and locked directions unprojected: two that step 1 lets through (alignment
# 1 - cos^2 >= MIN_ALIGNMENT) have eigenvalues down to 1 - |cos| >= MIN_ALIGNMENT / 2, which must stay solvable
NEWTON_FLOOR = MIN_ALIGNMENT / 10
HOLD_STEPS = 10      # at most this many classifier-guided steps to keep a locked digit (step 5 of edit)
HOLD_STEP_SD = 0.25  # each of those steps is as long as a quarter-SD move of the median attribute


@dataclass
class AttributeDirections:
    """Unit latent directions (k, *latent_shape), one per named attribute, with `step[i]`: the latent
    distance that moves attribute i by one standard deviation of it over the model's samples (measured, not
    predicted). `record` holds fit quality, the attributes' spread, and names for principal directions."""

    names: list[str]
    vectors: torch.Tensor
    step: torch.Tensor
    record: dict = field(default_factory=dict)

    def index(self, name: str) -> int:
        if name not in self.names:
            raise ValueError(f"unknown attribute {name!r}; choose from {', '.join(self.names)}")
        return self.names.index(name)

    def to(self, device) -> "AttributeDirections":
        return AttributeDirections(self.names, self.vectors.to(device), self.step.to(device), self.record)


def _ridge(z: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    gram = z.T @ z
    return np.linalg.solve(gram + penalty * np.trace(gram) / len(gram) * np.eye(len(gram)), z.T @ y)


def _fit_linear(z: np.ndarray, y: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Ridge regression of each column of y on z, the penalty picked by held-out R^2 (1 - SSE/SST).
    Returns weights (d, k), the penalty, and the held-out R^2 per column."""
    test = ~train
    z_mean, y_mean = z[train].mean(0), y[train].mean(0)
    best = None
    for penalty in (1e-3, 1e-2, 1e-1, 1.0):
        w = _ridge(z[train] - z_mean, y[train] - y_mean, penalty)
        residual = y[test] - y_mean - (z[test] - z_mean) @ w
        r2 = 1 - (residual**2).sum(0) / ((y[test] - y[test].mean(0)) ** 2).sum(0).clip(1e-12)
        if best is None or r2.mean() > best[2].mean():
            best = (w, penalty, r2)
    w = _ridge(z - z.mean(0), y - y.mean(0), best[1])  # refit on everything with the chosen penalty
    return w, best[1], best[2]


def _fit_classes(z: np.ndarray, classes: np.ndarray, count: int, train: np.ndarray,
                 iterations: int = 200) -> tuple[np.ndarray, float]:
    """A linear classifier per class (one-vs-rest logistic regression with a small L2 penalty, as
    InterFaceGAN fits a linear SVM per attribute). Returns weights (d, count) and held-out accuracy of the
    argmax against the class the domain classifier reads."""
    zt = torch.as_tensor(z, dtype=torch.float64)
    targets = torch.nn.functional.one_hot(torch.as_tensor(classes), count).double()
    weights = torch.zeros(z.shape[1], count, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(count, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=iterations, line_search_fn="strong_wolfe")
    mask = torch.as_tensor(train)

    def closure():
        optimizer.zero_grad()
        logits = zt[mask] @ weights + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[mask]) + 1e-3 * (weights**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        accuracy = float(((zt[~mask] @ weights + bias).argmax(1) == torch.as_tensor(classes)[~mask]).double().mean())
    return weights.detach().numpy(), accuracy


def measures_of(model) -> Measures:
    """The measures of the model's domain for images of its shape (explorer.domains)."""
    from .domains import domain_of

    return domain_of(model).edit_measures(tuple(model.image_shape))


def fit_directions(model, samples: int = 2000, seed: int = 0, calibration: int = 100, classifier=None,
                   principal=None) -> AttributeDirections:
    """Attribute directions for any family and any domain (`measures_of(model)`), all fitted the same way:

    1. draw latents from the prior (x_T for diffusion, the exact latent for a flow), decode and measure them;
    2. where the domain has classes, fit a linear classifier per class (digit) on the class the classifier
       reads; then regress each continuous measure on the latent within each class and off the class
       classifiers' span (ridge, penalty chosen on a held-out fifth, whose within-class R^2 is recorded), so
       style edits keep the digit; each weight vector, normalised, is that attribute's direction (InterFaceGAN's
       normal to the separating plane). A domain without classes regresses on the whole latent;
    3. calibrate: move `calibration` fresh latents a small distance each way along each direction, decode,
       measure, and set the step so +1 moves the attribute by one standard deviation of it over step 1's
       samples, as measured rather than as the linear fit predicts;
       The step is signed: where the decoder moves the attribute against the fit's direction (measured slope
       below zero), +1 steps the other way, so +1 always moves the attribute up. Where the slope is below the
       usable floor (`usable_slope`: too shallow, or its sign within the probes' noise) the step stays at the
       probe distance along the fit's own direction, recorded as not calibrated (and then no lock divides by it);
    4. name each principal direction (if given) by the attribute whose measure its score correlates with most.
    A circular measure (hue) is taken as its deviation from its circular mean, and its changes the short way."""
    measures = measures_of(model)
    continuous = len(measures.names)
    if measures.classes:
        classifier = classifier or measures.classifier(model.device)
    z = model.sample_latent(samples, seed=seed, temperature=model.default_temperature).cpu()  # 1.
    table = measures.centred(measures.table(model.decode_in_batches(z), classifier))
    names = list(measures.columns)
    z_flat = z.flatten(1).double().numpy()
    train = np.random.default_rng(seed).random(samples) < 0.8
    z_style, table_within = z_flat - z_flat.mean(0), table[:, :continuous] - table[:, :continuous].mean(0)
    record = {}
    if measures.classes:
        read = table[:, continuous:].argmax(1)  # log-odds order as the probabilities do
        w_class, class_accuracy = _fit_classes(z_flat, read, len(measures.classes), train)
        # style directions keep the class: regress within each class (latents and measures centred on their own
        # class's means) on the latent with the class classifiers' span removed, so the fit cannot thicken a 1 by
        # turning it into a 0; only what the latent holds besides identity is used
        class_basis = np.linalg.qr(w_class)[0]
        z_style = z_flat - (z_flat @ class_basis) @ class_basis.T
        table_within = table[:, :continuous].copy()
        for k in range(len(measures.classes)):
            members = read == k
            if members.any():
                z_style[members] -= z_style[members].mean(0)
                table_within[members] -= table_within[members].mean(0)
        record = {"digit_heldout_accuracy": class_accuracy,
                  "class_shares": np.bincount(read, minlength=len(measures.classes)).tolist()}
    w_cont, penalty, r2 = _fit_linear(z_style, table_within, train)  # 2.
    if measures.classes:
        w_cont -= class_basis @ (class_basis.T @ w_cont)  # exactly off the class span (ridge leaves rounding)
        weights = np.concatenate([w_cont, w_class], 1).T  # (continuous + classes, d)
    else:
        weights = w_cont.T
    sd = table.std(0)
    # an attribute that never varies over the samples (a digit the model never draws, the height of a shape that
    # only moves sideways) gets no direction: a spread at float32's rounding of the measure is no variation
    fitted = (np.linalg.norm(weights, axis=1) > 1e-9) & (sd > 1e-6 * (1 + np.abs(table.mean(0))))
    weights[~fitted] = 0
    vectors = torch.as_tensor(weights / np.linalg.norm(weights, axis=1, keepdims=True).clip(1e-12), dtype=torch.float32)

    probe = model.sample_latent(calibration, seed=seed + 1, temperature=model.default_temperature).cpu()  # 3.
    # first guess from the fits (a logistic weight's norm is its predicted log-odds slope), kept within a
    # quarter of the prior's typical radius so the probe stays where the model was trained
    radius = float(np.linalg.norm(z_flat, axis=1).mean())
    trial = sd / np.linalg.norm(weights, axis=1).clip(1e-12)
    trial = np.minimum(trial, radius / 4)
    step = np.zeros(len(names))
    slopes = np.zeros(len(names))
    slope_se = np.full(len(names), np.inf)
    calibrated = np.zeros(len(names), bool)
    for i, vector in enumerate(vectors):
        if not fitted[i]:
            continue
        offset = float(trial[i]) * vector.reshape(1, *model.latent_shape)
        up = measures.table(model.decode_in_batches(probe + offset), classifier, [i])
        down = measures.table(model.decode_in_batches(probe - offset), classifier, [i])
        per_probe = measures.difference(up, down, [i])[:, 0] / (2 * trial[i])
        slopes[i] = float(per_probe.mean())
        if len(per_probe) > 1:
            slope_se[i] = float(per_probe.std(ddof=1) / math.sqrt(len(per_probe)))
        calibrated[i] = usable_slope(slopes[i], sd[i], radius, slope_se[i])
        step[i] = sd[i] / slopes[i] if calibrated[i] else float(trial[i])  # signed: +1 moves the attribute up
    record = {
        "samples": samples, "seed": seed, "calibration": calibration, "ridge_penalty": penalty,
        "weights_sha256": fitted_for(model), "prior_radius": radius,
        "attributes": {name: {"sd": float(sd[i]), "unit": measures.units.get(name, "log-odds"), "fitted": bool(fitted[i]),
                              "measured_slope": float(slopes[i]),
                              "measured_slope_se": float(slope_se[i]) if np.isfinite(slope_se[i]) else None,
                              "step": float(step[i]), "calibrated": bool(calibrated[i]),
                              **({"heldout_r2": float(r2[i])} if i < continuous else {})}
                       for i, name in enumerate(names)},
        **record,
    }
    if principal is not None:  # 4.
        record["principal_labels"] = label_directions(principal.vectors.cpu(), z, table[:, :continuous], measures.names)
    return AttributeDirections(names, vectors.reshape(len(names), *model.latent_shape),
                               torch.as_tensor(step, dtype=torch.float32), record)


def usable_slope(slope: float, sd: float, radius: float, se: float | None = None) -> bool:
    """Whether a measured slope is large enough to divide by (see USABLE_SLOPE_SD_PER_HALF_RADIUS): 1. its
    size against the attribute's SD and the prior radius; 2. its size against its standard error, where known
    (None: a fit from before the error was recorded, whose calibrated steps all came from slopes above 0)."""
    if not sd > 0 or abs(slope) * radius / 2 < USABLE_SLOPE_SD_PER_HALF_RADIUS * sd:
        return False
    return se is None or abs(slope) >= SIGN_SE * se


def label_directions(vectors: torch.Tensor, z: torch.Tensor, measures_table: np.ndarray,
                     names=ATTRIBUTES) -> list[dict]:
    """For each direction, the measure (a column of `measures_table`, named by `names`) its latent score
    correlates with most (Pearson r, signed)."""
    scores = z.flatten(1).double().numpy() @ vectors.flatten(1).double().numpy().T
    labels = []
    for column in scores.T:
        with np.errstate(invalid="ignore", divide="ignore"):  # a measure that never varies correlates with nothing
            r = np.nan_to_num(np.array([np.corrcoef(column, measures_table[:, j])[0, 1] for j in range(len(names))]))
        best = int(np.abs(r).argmax())
        labels.append({"attribute": names[best], "r": float(r[best]), "all": {a: float(v) for a, v in zip(names, r)}})
    return labels


ATTRIBUTES_COMMAND = "python -m explorer.attributes"


def save_attribute_directions(directions: AttributeDirections, folder,
                              file_names: tuple[str, str] = (ATTRIBUTES_FILE, ATTRIBUTES_RECORD)) -> None:
    """Write attributes.safetensors and attributes.json (or `file_names`); the record names the weights they
    were fitted for."""
    from safetensors.torch import save_file

    if directions.record.get("weights_sha256") is None:
        raise ValueError("these directions were fitted on a model not loaded from a checkpoint: nothing says "
                         "which weights they belong to, so they are not saved beside any")
    folder = Path(folder)
    save_file({"vectors": directions.vectors.contiguous().cpu(), "step": directions.step.cpu()},
              str(folder / file_names[0]))
    (folder / file_names[1]).write_text(json.dumps({"names": directions.names, **directions.record}, indent=1) + "\n")


def _read_attribute_files(folder: Path) -> tuple[dict, dict] | None:
    from safetensors.torch import load_file

    if not (folder / ATTRIBUTES_FILE).is_file() or not (folder / ATTRIBUTES_RECORD).is_file():
        return None
    return json.loads((folder / ATTRIBUTES_RECORD).read_text()), load_file(str(folder / ATTRIBUTES_FILE))


def _directions_from(folder: Path, record: dict, tensors: dict) -> AttributeDirections:
    names = record.pop("names")
    if tensors["vectors"].shape[0] != len(names) or tensors["step"].shape != (len(names),):
        raise CheckpointError(f"{ATTRIBUTES_FILE} of {folder.name} does not match its {ATTRIBUTES_RECORD}: refit "
                              f"with {ATTRIBUTES_COMMAND} {folder.name}")
    return AttributeDirections(names, tensors["vectors"], tensors["step"], record)


def load_attribute_directions(folder) -> AttributeDirections | None:
    """The attribute directions shipped beside the checkpoint in `folder`, None where there are none; refused
    (CheckpointError, saying what to run) where they were fitted for other weights or do not say which
    (files from before the hash was recorded: see latent.check_fitted_for)."""
    folder = Path(folder)
    found = _read_attribute_files(folder)
    if found is None:
        return None
    record, tensors = found
    check_fitted_for(folder, record.get("weights_sha256"), "the attribute directions", ATTRIBUTES_COMMAND)
    return _directions_from(folder, record, tensors)


def cached_attribute_directions(model, samples: int = 2000, calibration: int = 100, principal=None) -> AttributeDirections:
    """fit_directions of a model opened from elsewhere, fitted once per weights and kept in the explorer's own
    cache, never the model's folder (see latent.cached_fit)."""
    def read(folder: Path, key: str) -> AttributeDirections | None:
        found = _read_attribute_files(folder)
        if found is None or found[0].get("weights_sha256") != key:
            return None
        return _directions_from(folder, *found)

    def write(directions: AttributeDirections, folder: Path) -> None:
        partial = [partial_path(folder, name) for name in (ATTRIBUTES_FILE, ATTRIBUTES_RECORD)]
        save_attribute_directions(directions, folder, tuple(p.name for p in partial))
        for path, name in zip(partial, (ATTRIBUTES_FILE, ATTRIBUTES_RECORD)):
            path.replace(folder / name)

    return cached_fit(model, read, lambda: fit_directions(model, samples, calibration=calibration, principal=principal),
                      write)


_CACHE: dict[str, AttributeDirections] = {}


def refuse_noise_latent(model) -> None:
    if not model.smooth_latent:
        raise ValueError(f"a {model.family} model's latent is sampling noise: a small change gives an unrelated "
                         "image, so it has no attribute directions to edit along")


def directions_for(model) -> AttributeDirections:
    """The shipped directions of a loaded checkpoint (fitted and cached on first use if none shipped)."""
    refuse_noise_latent(model)
    source = getattr(model, "checkpoint_path", None)
    key = f"{source}:{model.device}" if source else str(id(model))
    if key not in _CACHE:
        found = load_attribute_directions(source) if source else None
        _CACHE[key] = (found or fit_directions(model)).to(model.device)
    return _CACHE[key]


def edit(model, z: torch.Tensor, amounts: dict[str, float], lock=(), directions: AttributeDirections | None = None,
         extra: torch.Tensor | None = None, refine: int = 2, hold_log_odds: bool = True) -> torch.Tensor:
    """The latent z (N, *latent_shape) moved along named attribute directions, in standard deviations of each
    attribute, with the attributes in `lock` held still ("digit" holds whichever digit each latent reads as now).
    The edited and locked attributes are solved together: each edited attribute is set to its amount and each
    locked one kept, whatever the others do (adding each edit on its own let one undo another: on dcgan-mnist,
    thickness +2 with width -2 and slant locked measured -0.25 sd of thickness).
    A locked "digit k" holds that digit's log-odds (steps 2, 4 and 5); "digit" ("keep the digit") holds which
    digit is read (steps 2 and 5, `hold_log_odds=False`): a thicker 5 is often a more confident 5, and undoing
    that confidence along the digit's direction undid the thickening itself (vae-mnist seed 4: thickness +2
    kept the digit but measured 2.67 px against 2.70 unedited and 3.39 with no lock).

    Attribute i is modelled, to first order, as changing by slope_i * (v_i . delta) for a move delta (v_i its
    unit direction, slope_i its calibrated slope along it), so asking for amount_i SDs is asking for
    v_i . delta = amount_i * step_i (step_i = sd_i / slope_i), and a lock for v_i . delta = 0:
    1. the locked directions span L (Gram-Schmidt); each edited direction keeps its part w_i off L, and an edit
       with almost none left (alignment ||w_i||^2 below MIN_ALIGNMENT) is refused (InterFaceGAN's conditional
       manipulation, Shen et al. 2020, Eq. 4, generalised to several locks);
    2. delta, in the span of the w_i, solves w_i . delta = amount_i * step_i for every edited i at once
       (minimum-norm least squares through the Gram matrix of the w_i, pseudo-inverted with its eigenvalues
       below MIN_ALIGNMENT dropped, so two edits whose directions nearly coincide share the move instead of
       throwing the latent far); an `extra` move (principal directions, say) is projected off L and the edits
       solved for what it leaves them;
    3. with one edit and no extra this is the edit's own direction projected off L and lengthened so its
       predicted change is still amount * sd (the lone-edit case is exactly amount * step * v);
    4. the model holds only as far as the decoder is linear, so where two or more rows are measured (or an
       extra move is made), `refine` times the edited latent is decoded,
       every edited and locked attribute whose slope the fit calibrated (`usable_slope`) is measured, and the
       misses (measured change minus asked) are undone together: a Gauss-Newton step with the calibrated
       slopes, solving v_i . correction = miss_i / slope_i for those rows with every other row held at 0, so
       fixing one attribute does not move another to first order. A row whose slope the fit did not calibrate
       takes no step (its sign is unknown; dividing by it threw the latent ~1e7 away where a typical latent's
       norm is ~5) but is still held by the projection. The summed correction of each latent is kept within
       LOCK_REACH * ||delta||: where undoing the misses would take a move longer than the edit, the miss is
       the decoder bending, not the linear side effect a Newton step can invert; so the edited latent stays
       within 2 ||delta|| of z (step 5 adds at most HOLD_STEPS * HOLD_STEP_SD median slider steps);
    5. a locked digit ("digit k") is a decision boundary, not a linear quantity: where the classifier still
       reads another digit after 4, `_hold_digit` walks the latent back
       across the boundary by classifier guidance (Dhariwal & Nichol 2021, Sec. 4, here in latent space), each step
       projected off the edited and locked directions so the edit itself stays."""
    refuse_noise_latent(model)
    directions = directions or directions_for(model)
    z = model.check_latent(z)
    if not isinstance(amounts, dict):
        raise TypeError(f"amounts must map attribute names to numbers, got {type(amounts).__name__}")
    lock = (lock,) if isinstance(lock, str) else tuple(lock)
    measures = measures_of(model)
    classes = measures.classes
    # where the model's images are, not wherever a GPU happens to be; a domain without classes has no classifier
    classifier = measures.classifier(model.device) if classes else None
    if "digit" in lock:  # "keep the digit": lock, for each latent, the digit it reads as now
        if not classes:
            raise ValueError("this model's images have no classes, so there is no digit to keep")
        with torch.inference_mode():
            current = measures.read_class(model.decode(z), classifier)
        edited = torch.empty_like(z)
        others = tuple(name for name in lock if name != "digit")
        for digit in np.unique(current):
            rows = torch.as_tensor(current == digit, device=z.device)
            edited[rows] = edit(model, z[rows], amounts, others + (classes[digit],), directions, extra, refine,
                                hold_log_odds=False)
        return edited
    locked = [directions.index(name) for name in lock]
    asked = {}
    for name, amount in amounts.items():
        i = directions.index(name)
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
            raise ValueError(f"amount for {name!r} must be a finite number, got {amount!r}")
        if amount == 0:
            continue
        if i in locked:
            raise ValueError(f"{name!r} is both edited and locked")
        if float(directions.step[i]) == 0:
            raise ValueError(f"{name!r} has no direction: it never varied over this model's samples")
        asked[i] = float(amount)
    vectors = directions.vectors.to(z.device).flatten(1).double()
    edited_rows = list(asked)

    def off(span_rows: list[int], x: torch.Tensor) -> torch.Tensor:
        """x (.., d) with its part in the span of `span_rows`' directions removed."""
        if not span_rows:
            return x
        basis = torch.linalg.qr(vectors[span_rows].T).Q
        return x - (x @ basis) @ basis.T

    def alignments(span_rows: list[int]) -> list[float]:
        return [float(vectors[i] @ off(span_rows, vectors[i])) for i in edited_rows]

    if not hold_log_odds and locked and min(alignments(locked), default=1.0) < MIN_ALIGNMENT:
        # "keep the digit" holds a decision, and step 5 holds it without the projection: where projecting off the
        # digit's direction would leave an edit almost nothing of its own (a 2-D latent, where the ten digit
        # directions fill the plane), the edit goes unprojected from it instead of being refused
        locked = [i for i in locked if directions.names[i] not in classes]
    for i, alignment in zip(edited_rows, alignments(locked)):  # 1.
        if alignment < MIN_ALIGNMENT:
            raise ValueError(f"{directions.names[i]!r} cannot move with {', '.join(lock)} locked: their directions "
                             "nearly coincide")
    steps = directions.step.double().to(z.device)
    delta = torch.zeros_like(vectors[0])
    if extra is not None:
        delta = off(locked, extra.to(delta).reshape(-1))
    if edited_rows:  # 2.
        own = off(locked, vectors[edited_rows])
        wanted = torch.tensor([asked[i] for i in edited_rows], dtype=torch.float64, device=z.device) * steps[edited_rows]
        delta = delta + own.T @ (_pinv(own @ own.T) @ (wanted - own @ delta))
    edited = z + delta.float().reshape(1, *model.latent_shape)
    fits = directions.record["attributes"]
    radius = directions.record["prior_radius"]

    def measurable(i: int) -> bool:
        fit = fits[directions.names[i]]
        return (hold_log_odds or directions.names[i] not in classes) and fit["calibrated"] and usable_slope(
            fit["measured_slope"], fit["sd"], radius, fit["measured_slope_se"])

    rows = edited_rows + locked
    newton = [k for k, i in enumerate(rows) if measurable(i)]
    # a lone measured row is a lone slider: its calibrated step is what +1 means (one SD on average), and
    # pushing each latent to exactly +1 pushed hard-to-move digits across their boundary (vae-mnist, width +2
    # with the digit kept: 88% kept against 100%); corrections are for what other rows do to it
    if len(newton) < 2 and extra is None:
        newton = []
    if newton and refine > 0 and bool(delta.abs().max() > 0):  # 4.
        columns = [rows[k] for k in newton]
        slopes = torch.tensor([fits[directions.names[i]]["measured_slope"] for i in columns], dtype=torch.float64,
                              device=z.device)
        sds = torch.tensor([fits[directions.names[i]]["sd"] for i in columns], dtype=torch.float64, device=z.device)
        targets = torch.tensor([asked.get(i, 0.0) for i in columns], dtype=torch.float64, device=z.device) * sds
        all_rows = vectors[rows]
        inverse = _pinv(all_rows @ all_rows.T, NEWTON_FLOOR)
        reach = LOCK_REACH * float(delta.norm())  # the corrections, summed, never outrun the edit
        total = torch.zeros(len(z), vectors.shape[1], dtype=torch.float64, device=z.device)
        with torch.inference_mode():
            before = measures.table(model.decode(z), classifier, columns)
            for _ in range(refine):
                measured = measures.table(model.decode(edited), classifier, columns)
                change = torch.as_tensor(measures.difference(measured, before, columns), device=z.device)
                miss = torch.zeros(len(z), len(rows), dtype=torch.float64, device=z.device)
                miss[:, newton] = (change - targets) / slopes  # in latent units along each direction
                total = total + (miss @ inverse) @ all_rows
                total = total * (reach / total.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
                edited = z + (delta - total).float().reshape(-1, *model.latent_shape)
    held_digits = [name for name in lock if name in classes]
    if len(held_digits) == 1 and bool(delta.abs().max() > 0):  # 5.
        kept_still = [directions.names[i] for i in edited_rows] + [n for n in lock if n not in classes]
        edited = _hold_digit(model, edited, classes.index(held_digits[0]), directions, kept_still, measures)
    return edited


def _pinv(gram: torch.Tensor, floor: float = MIN_ALIGNMENT) -> torch.Tensor:
    """The pseudo-inverse of a Gram matrix of directions, eigenvalues below `floor` dropped (steps 2 and 4 of
    `edit`): directions that nearly coincide share one move rather than asking for a huge difference."""
    values, vectors = torch.linalg.eigh(gram)
    kept = values > floor
    return (vectors[:, kept] / values[kept]) @ vectors[:, kept].T


def _hold_digit(model, z: torch.Tensor, digit: int, directions: AttributeDirections,
                kept_still: list[str], measures: Measures) -> torch.Tensor:
    """Step 5 of `edit`: for each latent the classifier no longer reads as `digit`, up to HOLD_STEPS
    normalised gradient steps down the classifier's cross-entropy for that digit, each step projected off the
    directions in `kept_still` (so their linear predictions do not move) and HOLD_STEP_SD attribute-SDs long."""
    classifier = measures.classifier(model.device)  # on the model's device: decoded images need no copy
    sliders = measures.sliders
    on = model.device
    vectors = directions.vectors.to(z.device).flatten(1)
    kept = [directions.index(n) for n in kept_still]
    basis = torch.linalg.qr(vectors[kept].T.double()).Q.float() if kept else vectors.new_zeros(vectors.shape[1], 0)
    length = HOLD_STEP_SD * float(np.median([abs(float(directions.step[directions.index(n)])) for n in sliders]))
    # callers may be in inference mode (the UI, benchmarks); autograd needs it off and a latent made outside it
    with torch.inference_mode(False), torch.enable_grad():
        target = torch.full((len(z),), digit, device=on)
        z = z.detach().clone()
        for _ in range(HOLD_STEPS):
            with torch.no_grad():  # the check: what the user will see
                wrong = (classifier(model.decode(z).to(on)).argmax(1) != target).to(z.device)
            if not bool(wrong.any()):
                break
            # the gradient, for the rows that need it, through a decode autograd can follow (the decode itself,
            # or for diffusion a shorter DDIM stand-in: see gradient_decode)
            moving = z[wrong].requires_grad_(True)
            logits = classifier(model.gradient_decode(moving).clamp(0, 1).to(on))
            loss = torch.nn.functional.cross_entropy(logits, target[: len(moving)], reduction="sum")
            (gradient,) = torch.autograd.grad(loss, moving)
            gradient = gradient.flatten(1)
            gradient = torch.where(torch.isfinite(gradient).all(1, keepdim=True), gradient, 0.0)  # a flow can overflow
            gradient = gradient - (gradient @ basis) @ basis.T
            gradient = gradient / gradient.norm(dim=1, keepdim=True).clamp_min(1e-12)
            z[wrong] -= length * gradient.reshape(-1, *z.shape[1:])
    return z.detach()


def main(argv: list[str] | None = None) -> None:
    """python -m explorer.attributes [NAME ...]: fit and ship each checkpoint's attribute directions."""
    import argparse
    import time

    from .checkpoint import list_models, resolve
    from .open import load_model
    from .latent import load_directions

    parser = argparse.ArgumentParser(prog="python -m explorer.attributes", description=main.__doc__)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--calibration", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.names or list_models():
        began = time.perf_counter()
        model = load_model(name, "cpu")
        directions = fit_directions(model, args.samples, args.seed, args.calibration,
                                    principal=load_directions(resolve(name)))
        directions.record["command"] = "python -m explorer.attributes " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
        save_attribute_directions(directions, resolve(name))
        fits = directions.record["attributes"]
        accuracy = directions.record.get("digit_heldout_accuracy")
        print(f"{name}: held-out R^2 " + ", ".join(f"{a} {fits[a]['heldout_r2']:.2f}" for a in measures_of(model).names)
              + (f"; class accuracy {accuracy:.2f}" if accuracy is not None else "")
              + f" ({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
