"""Every flow layer checked the same way (after normflows' base test): shapes kept, x == decode(encode(x)),
the two log-determinants sum to zero, and the log-determinant equals log|det J| from autograd."""

from __future__ import annotations

import pytest
import torch

from explorer.models.flow import ActNorm, AffineCoupling, Flow, FlowConfig, FlowStep, InvConv1x1, squeeze, unsqueeze


def randomised(layer: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    """Move every parameter off its identity-like initialisation so the checks see a real transform."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    for module in layer.modules():
        if isinstance(module, ActNorm):
            module.initialized.fill_(1.0)
    return layer.eval()


LAYERS = {
    "actnorm": lambda: ActNorm(4),
    "invconv": lambda: InvConv1x1(4),
    "coupling": lambda: AffineCoupling(4, 8),
    "coupling (transform first)": lambda: AffineCoupling(4, 8, transform_first=True),
    "flow step": lambda: FlowStep(4, 8),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_inverts_and_logdets_cancel(name):
    layer = randomised(LAYERS[name]())
    x = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    layer = layer.double()
    y, logdet_encode = layer.encode(x)
    x_back, logdet_decode = layer.decode(y)
    assert y.shape == x.shape and logdet_encode.shape == (3,)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(logdet_encode + logdet_decode, torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_logdet_matches_autograd_jacobian(name):
    layer = randomised(LAYERS[name]()).double()
    x = torch.randn(1, 4, 2, 2, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: layer.encode(v.view(1, 4, 2, 2))[0].flatten(), x.flatten())
    expected = torch.linalg.slogdet(jacobian)[1]
    torch.testing.assert_close(layer.encode(x)[1][0], expected, atol=1e-8, rtol=0)


def test_squeeze_is_an_inverted_permutation():
    x = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).view(2, 1, 4, 6)
    s = squeeze(x)
    assert s.shape == (2, 4, 2, 3)
    assert torch.equal(unsqueeze(s), x)
    assert torch.equal(s[0, :, 0, 0], torch.tensor([0.0, 1.0, 6.0, 7.0]))  # one 2x2 patch -> four channels


@pytest.fixture(scope="module")
def small_flow():
    torch.manual_seed(0)
    model = Flow(FlowConfig(steps_per_scale=(2, 2), hidden_channels=(8, 8)))
    model.initialise_from_data(torch.rand(32, 1, 28, 28))
    return randomised(model, seed=1, scale=0.05)  # deep stacks amplify larger changes past float32


def test_whole_flow_round_trip_on_digits(small_flow, digits):
    x, _ = digits
    torch.testing.assert_close(small_flow.decode(small_flow.encode(x)), x, atol=1e-4, rtol=0)


def test_whole_flow_logdet_matches_autograd_jacobian(small_flow):
    flow = small_flow.double()
    try:
        s = torch.randn(1, 1, 28, 28, dtype=torch.float64)
        jacobian = torch.autograd.functional.jacobian(lambda v: flow.flow_encode(v.view(1, 1, 28, 28))[0].flatten(), s.flatten())
        torch.testing.assert_close(flow.flow_encode(s)[1][0], torch.linalg.slogdet(jacobian)[1], atol=1e-6, rtol=1e-9)
    finally:
        flow.float()


def test_bits_per_dim_is_the_change_of_variables_formula(small_flow, digits):
    """bits/dim recomputed by hand from encode's latent and the layers' log-determinants."""
    import math

    x, _ = digits
    x = x[:2]
    y = (x * 255 + torch.rand(x.shape, generator=torch.Generator().manual_seed(0))) / 256
    s, logdet_logit = small_flow._to_logit(y)
    z, logdet_flow = small_flow.flow_encode(s)
    log_p = -0.5 * (z**2).flatten(1).sum(1) - 0.5 * 784 * math.log(2 * math.pi) + logdet_flow + logdet_logit
    expected = (-log_p + 784 * math.log(256)) / (784 * math.log(2))
    torch.testing.assert_close(small_flow.bits_per_dim(x), expected, atol=1e-4, rtol=0)


def test_decode_steps_start_from_noise_and_end_at_the_image(small_flow):
    z = small_flow.sample_latent(2, seed=0)
    steps = list(small_flow.decode_steps(z))
    assert len(steps) == 2 + 1 + 2  # every flow step of both scales and the split prior
    assert steps[0].label.startswith("after scale 2") and steps[-1].label.startswith("after scale 1 step 1")
    torch.testing.assert_close(steps[-1].image, small_flow.decode(z), atol=1e-5, rtol=0)


def test_far_out_latents_decode_to_finite_images(small_flow):
    z = small_flow.sample_latent(4, seed=0) * 60  # deep in the prior's tail, where inverses can blow up
    x = small_flow.decode(z)
    assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
