"""The lecture notes' two-player game, min_x max_y f(x, y) = x * y: the smallest model of a GAN's training,
where one player descends the value the other ascends. Its only equilibrium is (0, 0), and which way the
players go depends on how their gradient steps are taken, not on the game:

1. Simultaneous gradient descent-ascent: both step from the same point, x' = x - lr * y, y' = y + lr * x.
   The update is (1 + lr^2)^(1/2) times a rotation, so the radius grows by exactly that factor every step: the
   players spiral out (Mescheder et al. 2017, "The Numerics of GANs", section 3).
2. Alternating: x steps first and y answers the new x, x' = x - lr * y, y' = y + lr * x'. The update has
   determinant 1 and keeps Q = x^2 + y^2 - lr * x * y exactly, so the players cycle on an ellipse for ever
   (Gidel et al. 2019, "Negative Momentum for Improved Game Dynamics", section 3).
3. Extragradient: look ahead one step, then step with the gradient found there (Korpelevich 1976). The update
   is (1 - lr^2 + lr^4)^(1/2) times a rotation: the radius shrinks by that factor every step, to the equilibrium.
4. Optimistic gradient descent-ascent: step with twice this gradient less the last one,
   z' = z - lr * (2 F(z) - F(z_prev)) (Daskalakis et al. 2018, "Training GANs with Optimism", eq. 3), which
   also converges for small lr. Its first step has no last gradient and takes the plain one.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

METHODS = ("simultaneous", "alternating", "extragradient", "optimistic")
COLOURS = {"simultaneous": (230, 85, 60), "alternating": (240, 190, 60), "extragradient": (80, 190, 120),
           "optimistic": (90, 150, 240)}
START = (1.0, 0.5)
FAR = 1e12  # a path this far out has shown it diverges: it stops there, before float64 overflows to inf
PIXELS = 420
LABEL_FONT = 14  # px, as the playground's legends: readable on a projector


def field(x: float, y: float) -> tuple[float, float]:
    """The players' descent directions' negatives F(z): x descends d(xy)/dx = y, y ascends d(xy)/dy = x."""
    return y, -x


def play(method: str, lr: float, steps: int, start: tuple[float, float] = START) -> np.ndarray:
    """The players' positions (steps + 1, 2), from `start`, under `method` (one of METHODS) at learning rate lr;
    fewer where the path got FAR from the equilibrium."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    x, y = map(float, start)
    path = [(x, y)]
    last = field(x, y)
    for _ in range(steps):
        if method == "simultaneous":  # step 1
            gx, gy = field(x, y)
            x, y = x - lr * gx, y - lr * gy
        elif method == "alternating":  # step 2
            x = x - lr * field(x, y)[0]
            y = y - lr * field(x, y)[1]
        elif method == "extragradient":  # step 3: the look-ahead point, then its gradient from here
            gx, gy = field(x, y)
            gx, gy = field(x - lr * gx, y - lr * gy)
            x, y = x - lr * gx, y - lr * gy
        else:  # step 4
            gx, gy = field(x, y)
            x, y = x - lr * (2 * gx - last[0]), y - lr * (2 * gy - last[1])
            last = (gx, gy)
        path.append((x, y))
        if math.hypot(x, y) > FAR:
            break
    return np.array(path)


def verdict(method: str, lr: float, path: np.ndarray) -> str:
    """What the theory says of `method` at `lr` (its update's spectral radius) and what `path` did."""
    rho = spectral_radius(method, lr)
    went = f"radius {np.hypot(*path[0]):.3g} to {np.hypot(*path[-1]):.3g} in {len(path) - 1} steps"
    if rho > 1 + 1e-9:
        return f"spirals out, x{rho:.6g} a step ({went})"
    if rho < 1 - 1e-9:
        return f"converges, x{rho:.6g} a step ({went})"
    kept = " on the ellipse x² + y² − lr·x·y = constant" if method == "alternating" else ""
    return f"cycles{kept} ({went})"


def draw(paths: dict[str, np.ndarray], span: float | None = None) -> np.ndarray:
    """The trajectories on the (x, y) plane as an RGB image, the equilibrium (0, 0) marked, each path named in
    its colour. The view is 2.5 times the start's radius either way, so a spiral out leaves it."""
    if span is None:
        span = 2.5 * max((float(np.hypot(*p[0])) for p in paths.values()), default=1.0)
    image = Image.new("RGB", (PIXELS, PIXELS), (24, 24, 32))
    draw_ = ImageDraw.Draw(image)

    def pixel(x: float, y: float) -> tuple[float, float]:
        return (x / span + 1) * PIXELS / 2, (1 - y / span) * PIXELS / 2

    draw_.line([pixel(-span, 0), pixel(span, 0)], fill=(70, 70, 85))
    draw_.line([pixel(0, -span), pixel(0, span)], fill=(70, 70, 85))
    draw_.text((PIXELS - 8, PIXELS / 2 - 4), "x (min)", fill=(150, 150, 165), font_size=LABEL_FONT - 1, anchor="rb")
    draw_.text((PIXELS / 2 + 6, 8), "y (max)", fill=(150, 150, 165), font_size=LABEL_FONT - 1, anchor="lt")
    for method, path in paths.items():
        far = np.flatnonzero(np.abs(path).max(1) > 10 * span)  # a spiral out, cut where Pillow's pixels overflow
        points = [pixel(x, y) for x, y in (path[: far[0]] if len(far) else path)]
        if len(points) > 1:
            draw_.line(points, fill=COLOURS[method], width=2)
        sx, sy = pixel(*path[0])
        draw_.ellipse([sx - 4, sy - 4, sx + 4, sy + 4], outline=(235, 235, 235), width=2)
    ox, oy = pixel(0, 0)
    draw_.line([ox - 6, oy - 6, ox + 6, oy + 6], fill=(235, 235, 235), width=2)
    draw_.line([ox - 6, oy + 6, ox + 6, oy - 6], fill=(235, 235, 235), width=2)
    for row, method in enumerate(paths):  # below the corner where Gradio puts the image's label
        draw_.text((10, 34 + row * (LABEL_FONT + 6)), method, fill=COLOURS[method], font_size=LABEL_FONT)
    draw_.text((PIXELS - 10, PIXELS - 10), f"x and y from -{span:.3g} to {span:.3g}", fill=(200, 200, 210),
               font_size=LABEL_FONT - 1, anchor="rb")
    return np.asarray(image)


def update_matrix(method: str, lr: float) -> np.ndarray:
    """The linear map one step of `method` applies, written out from steps 1-4: on (x, y), or for the
    optimistic method, which remembers the last gradient, on (x, y, last x, last y)."""
    if method == "simultaneous":
        return np.array([[1, -lr], [lr, 1]])
    if method == "alternating":
        return np.array([[1, -lr], [lr, 1 - lr**2]])
    if method == "extragradient":
        return np.array([[1 - lr**2, -lr], [lr, 1 - lr**2]])
    if method == "optimistic":
        return np.array([[1, -2 * lr, 0, lr], [2 * lr, 1, -lr, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")


def spectral_radius(method: str, lr: float) -> float:
    """How far a step takes the players out (> 1) or in (< 1) in the long run: the update's largest |eigenvalue|.
    Steps 1 and 3 are scaled rotations, so there it is their closed form, sqrt(1 + lr^2) and
    sqrt(1 - lr^2 + lr^4); the alternating update has determinant 1 and, for lr < 2, complex eigenvalues: 1."""
    return float(np.abs(np.linalg.eigvals(update_matrix(method, lr))).max())
