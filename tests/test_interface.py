"""One test of the shared interface, run over every family (tiny configs) and every shipped checkpoint."""

from __future__ import annotations

import pytest
import torch

from explorer.base import LatentModel, Step
from explorer.checkpoint import load_checkpoint, save_checkpoint

from conftest import SHIPPED, shipped


def test_sample_latent_is_seeded(tiny):
    a, b, c = tiny.sample_latent(3, seed=7), tiny.sample_latent(3, seed=7), tiny.sample_latent(3, seed=8)
    assert a.shape == (3, *tiny.latent_shape)
    assert torch.equal(a, b) and not torch.equal(a, c)
    centre = tiny.sample_latent(3, seed=7, temperature=0.0)  # temperature scales the spread about the prior's centre
    assert torch.allclose(tiny.sample_latent(3, seed=7, temperature=0.5) - centre, (a - centre) * 0.5, atol=1e-6)


def test_decode_shape_range_and_determinism(tiny):
    z = tiny.sample_latent(4, seed=1)
    x = tiny.decode(z)
    assert x.shape == (4, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x, tiny.decode(z))
    # one unbatched latent is accepted; another batch size may round differently in the last bits
    torch.testing.assert_close(tiny.decode(z[0]), x[:1], atol=1e-5, rtol=0)


def test_decode_steps_end_at_decode(tiny):
    z = tiny.sample_latent(2, seed=2)
    steps = list(tiny.decode_steps(z))
    assert steps and all(isinstance(s, Step) for s in steps)
    assert [s.index for s in steps] == list(range(len(steps))) and all(s.total == len(steps) for s in steps)
    assert all(s.image.shape == (2, 1, 28, 28) and 0 <= s.image.min() and s.image.max() <= 1 for s in steps)
    torch.testing.assert_close(steps[-1].image, tiny.decode(z), atol=1e-5, rtol=0)


def test_encode_and_likelihood_where_offered(tiny, digits):
    x, _ = digits
    if tiny.can_encode:
        z = tiny.encode(x[:3])
        assert z.shape == (3, *tiny.latent_shape) and torch.isfinite(z).all()
    else:
        with pytest.raises(NotImplementedError):
            tiny.encode(x[:3])
    if tiny.has_likelihood:
        bpd = tiny.bits_per_dim(x[:3])
        assert bpd.shape == (3,) and torch.isfinite(bpd).all() and (bpd > 0).all()
        assert torch.equal(bpd, tiny.bits_per_dim(x[:3]))  # the dequantisation / ELBO noise is seeded
    else:
        with pytest.raises(NotImplementedError):
            tiny.bits_per_dim(x[:3])


BAD_LATENTS = {
    "wrong shape": lambda shape: torch.zeros(2, 3, 3),
    "nan": lambda shape: torch.full((1, *shape), float("nan")),
    "empty batch": lambda shape: torch.zeros(0, *shape),
    "too many": lambda shape: torch.zeros(5000, *shape),
    "integers": lambda shape: torch.zeros(1, *shape, dtype=torch.int64),
    "not a tensor": lambda shape: [[0.0] * 8],
}


@pytest.mark.parametrize("kind", sorted(BAD_LATENTS))
def test_bad_latents_are_refused(tiny, kind):
    with pytest.raises((ValueError, TypeError)):
        tiny.decode(BAD_LATENTS[kind](tiny.latent_shape))


@pytest.mark.parametrize("bad", [torch.full((1, 1, 28, 28), 2.0), torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 28, 28, dtype=torch.int64)])
def test_bad_images_are_refused(tiny, bad):
    if tiny.can_encode:
        with pytest.raises((ValueError, TypeError)):
            tiny.encode(bad)


@pytest.mark.parametrize("bad", [-1, 2**63, 1.5, True, "7"])
def test_bad_seeds_are_refused(tiny, bad):
    with pytest.raises(ValueError):
        tiny.sample_latent(2, seed=bad)


def test_one_training_step_runs(tiny, digits):
    x, labels = digits
    tiny.train()
    optimizers = tiny.make_optimizers(1e-3)
    before = [p.detach().clone() for p in tiny.parameters()]
    batch = x.repeat(getattr(tiny.config, "n_critic", 1), 1, 1, 1)
    if tiny.needs_labels:  # as the training command gives it: (images, labels)
        batch = (batch, torch.as_tensor(labels))
    logs = tiny.training_step(batch, optimizers)
    assert logs and all(isinstance(v, float) and v == v for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, tiny.parameters()))


def test_save_reload_is_identical(tiny, tmp_path):
    folder = save_checkpoint(tiny, tmp_path / "ckpt", tiny.family, {"command": "test"})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_checkpoint(folder, "cpu")
    assert type(loaded) is type(tiny) and loaded.config == tiny.config
    original, reloaded = tiny.state_dict(), loaded.state_dict()
    assert original.keys() == reloaded.keys()
    assert all(torch.equal(original[k], reloaded[k]) for k in original)
    z = tiny.sample_latent(3, seed=3)
    assert torch.equal(tiny.decode(z), loaded.decode(z))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_loads_and_is_seeded(name):
    model = shipped(name)
    assert isinstance(model, LatentModel)
    record = model.checkpoint_record
    assert record["training"]["command"].startswith("python -m explorer.train ")
    assert record["training"]["steps"] > 0 and "seed" in record["training"]
    assert {"fid", "confidence", "min_class_share"} <= record["metrics"].keys()
    z = model.sample_latent(2, seed=11)
    assert torch.equal(model.decode(z), model.decode(model.sample_latent(2, seed=11)))


def test_every_encoder_says_how_it_encodes():
    from explorer.models import FAMILIES, model_class

    for family in FAMILIES:
        cls = model_class(family)
        if getattr(cls, "can_encode", False):
            assert cls.encode_method, f"{family} can encode but does not say how"
