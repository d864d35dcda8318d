"""Disentanglement, measured against known factors: how far each factor that made the data is carried by one
latent coordinate alone.

    from explorer.disentanglement import mig, dci
    score = mig(codes, factors)              # codes (N, d) floats, factors (N, k) (discrete or continuous)
    d, c, i = dci(codes, factors, train)     # disentanglement, completeness, informativeness

Both take the encodings of held-out images whose factors are known (a world such as dSprites or 3D Shapes).

MIG, the mutual information gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs", Eq. 7):
1. discretise each code coordinate and each continuous factor into `bins` equal-width bins (as
   disentanglement_lib does, Locatello et al. 2019); 2. the mutual information I(z_j; v_k) of every pair from
   their joint histogram; 3. for each factor, the gap between its two most informative coordinates, divided by
   the factor's entropy H(v_k); 4. the mean over factors. A code that copies each factor into a coordinate of its
   own scores 1; a code independent of the factors scores near 0 (only the histograms' finite-sample bias).

DCI (Eastwood & Williams 2018, "A Framework for the Quantitative Evaluation of Disentangled Representations",
Section 3): 1. a regressor per factor from the standardised codes; here ridge regression, the linear member of
their family (the paper's lasso, without sparsity's extra hyperparameter), whose importance for coordinate j is
|w_jk|; 2. disentanglement: each coordinate's importances as a distribution over factors, D_j = 1 - H_K(P_j.)
(entropy to base K, the number of factors), weighted by the coordinate's share of all importance;
3. completeness: each factor's importances as a distribution over coordinates, C_k = 1 - H_d(P~_.k), averaged;
4. informativeness: the regressors' mean held-out R^2 (1 - SSE/SST)."""

from __future__ import annotations

import numpy as np


def discretise(values: np.ndarray, bins: int) -> np.ndarray:
    """Each column of (N, m) values as integer bin indices 0..bins-1 over its own range (equal widths); a column
    that takes at most `bins` distinct values (a discrete factor) keeps them as its classes instead."""
    values = np.asarray(values, np.float64)
    out = np.zeros(values.shape, np.int64)
    for j in range(values.shape[1]):
        column = values[:, j]
        distinct = np.unique(column)
        if len(distinct) <= bins:
            out[:, j] = np.searchsorted(distinct, column)
        else:
            edges = np.linspace(column.min(), column.max(), bins + 1)[1:-1]
            out[:, j] = np.digitize(column, edges)
    return out


def entropy(labels: np.ndarray) -> float:
    """H(v) in nats of integer labels, from their frequencies."""
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats of two integer label arrays, from their joint histogram."""
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    joint /= len(a)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nonzero = joint > 0
    return float((joint[nonzero] * np.log(joint[nonzero] / (pa @ pb)[nonzero])).sum())


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """The mutual information gap of codes (N, d) against factors (N, k); see the module docstring. Factors that
    never vary (entropy 0) are left out of the mean."""
    codes, factors = discretise(codes, bins), discretise(factors, bins)  # 1.
    if codes.shape[1] < 2:
        raise ValueError("MIG compares a factor's two most informative coordinates: the code needs at least two")
    gaps = []
    for k in range(factors.shape[1]):
        h = entropy(factors[:, k])
        if h <= 0:
            continue
        informations = np.sort([mutual_information(codes[:, j], factors[:, k]) for j in range(codes.shape[1])])  # 2.
        gaps.append((informations[-1] - informations[-2]) / h)  # 3.
    if not gaps:
        raise ValueError("no factor varies over these images: there is nothing to be disentangled")
    return float(np.mean(gaps))  # 4.


def importance_matrix(codes: np.ndarray, factors: np.ndarray, train: np.ndarray,
                      penalty: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Step 1 of DCI: ridge regression of each standardised factor on the standardised codes, fitted on the rows
    in `train`. -> (importances |w| (d, k), held-out R^2 per factor (k,))."""
    codes, factors = np.asarray(codes, np.float64), np.asarray(factors, np.float64)
    scale = lambda x: (x - x[train].mean(0)) / x[train].std(0).clip(1e-12)  # noqa: E731
    z, v = scale(codes), scale(factors)
    gram = z[train].T @ z[train]
    weights = np.linalg.solve(gram + penalty * len(z[train]) * np.eye(len(gram)), z[train].T @ v[train])
    residual = v[~train] - z[~train] @ weights
    r2 = 1 - (residual ** 2).sum(0) / ((v[~train] - v[~train].mean(0)) ** 2).sum(0).clip(1e-12)
    return np.abs(weights), r2


def _normalised_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Rows of p (each summing to 1): their entropy to `base` (1 for uniform, 0 for one-hot)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(1) / np.log(base)


def dci_scores(importance: np.ndarray) -> tuple[float, float]:
    """Steps 2 and 3 of DCI from an importance matrix (d codes, k factors) of non-negative entries:
    (disentanglement, completeness). A factor no coordinate carries counts as spread over all of them
    (completeness 0); a coordinate that carries nothing weighs nothing."""
    importance = np.asarray(importance, np.float64)
    d, k = importance.shape
    per_code, per_factor = importance.sum(1), importance.sum(0)
    used = per_code > 0
    if not used.any():
        return 0.0, 0.0
    p = importance[used] / per_code[used, None]
    disentanglement = float(((1 - _normalised_entropy(p, k)) * per_code[used] / per_code.sum()).sum()) if k > 1 else 1.0
    q = np.where(per_factor > 0, importance / per_factor.clip(1e-300), 1.0 / d).T
    completeness = float((1 - _normalised_entropy(q, d)).mean()) if d > 1 else 1.0
    return disentanglement, completeness


def dci(codes: np.ndarray, factors: np.ndarray, train: np.ndarray, penalty: float = 1e-2) -> tuple[float, float, float]:
    """(disentanglement, completeness, informativeness) of codes (N, d) against factors (N, k), regressors
    fitted on the rows where `train` is True and R^2 measured on the rest; see the module docstring. Factors
    that never vary are left out."""
    factors = np.asarray(factors, np.float64)
    train = np.asarray(train, bool)
    varying = factors[train].std(0) > 0
    if not varying.any():
        raise ValueError("no factor varies over these images: there is nothing to be disentangled")
    importance, r2 = importance_matrix(codes, factors[:, varying], train, penalty)  # 1.
    return (*dci_scores(importance), float(r2.mean()))  # 2., 3., 4.
