"""The shapes world's shipped measurer reads every factor back from held-out images, against the truth the
images were drawn from; circular R^2 by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.checkpoint import load_checkpoint, resolve
from explorer.domains.shapes import FACTORS, RANGES
from explorer.models.measurer import Measurer, circular_r2, heldout_figures


def test_circular_r2_takes_errors_the_short_way_round():
    truth = np.array([350.0, 10.0, 90.0, 270.0])
    assert circular_r2(truth, truth + 360.0, 360.0) == pytest.approx(1.0)  # a full turn is no error
    # errors of 20 degrees across 0: as small as 20 degrees anywhere else
    assert circular_r2(truth, np.array([10.0, 350.0, 70.0, 290.0]), 360.0) == pytest.approx(
        circular_r2(truth, np.array([330.0, 30.0, 110.0, 250.0]), 360.0))
    mean_square = ((np.array([350.0, 10.0, 90.0, 270.0]) - 0.0 + 180) % 360 - 180) ** 2  # circular mean 0 degrees
    assert circular_r2(truth, truth + 20.0, 360.0) == pytest.approx(1 - 400.0 / mean_square.mean())


def test_targets_are_points_on_the_circle_and_scaled_ranges():
    table = torch.zeros(2, len(FACTORS))
    table[:, FACTORS.index("hue")] = torch.tensor([90.0, 180.0])
    table[:, FACTORS.index("x")] = torch.tensor(RANGES["x"])
    shape, points, linear = Measurer.targets(table)
    assert torch.allclose(points[:, :2], torch.tensor([[0.0, 1.0], [-1.0, 0.0]]), atol=1e-6)  # hue's (cos, sin)
    assert linear[:, -2].tolist() == [-1.0, 1.0]  # x at the ends of its range


def test_the_shipped_measurer_reads_every_factor_of_heldout_images():
    figures = heldout_figures(load_checkpoint(resolve("measurer-shapes"), "cpu").eval())
    assert figures["shape_accuracy"] >= 0.99, figures
    for name in FACTORS[1:]:
        assert figures[f"{name}_r2"] >= 0.95, (name, figures)  # the target; measured: see README
