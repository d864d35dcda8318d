"""The shapes world as a domain, and the families at its size: colour 3x32x32 models build, train, save and load;
the beta-VAE's and the Bernoulli decoder's objectives are what they say; a checkpoint knows its domain, and an
exported pipeline carries it; the domain reads the truth back; the disentanglement figures of the evaluation
score a perfect code near 1 and an entangled one near 0."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explorer.base import check_image_shape
from explorer.checkpoint import build_model, load_checkpoint, record_domain, save_checkpoint
from explorer.data import load_dataset, to_tensor
from explorer.domains import domain_of
from explorer.domains.shapes import CIRCULAR, FACTORS, RANGES, SHAPES, generate
from explorer.evaluate_shapes import coverage, disentanglement
from explorer.export import export_pipeline
from explorer.open import PIPELINE_RECORD, OpenError, load_model

COLOUR = [3, 32, 32]
SMALL = {"vae": {"latent_dim": 4, "channels": [4, 8], "hidden": 16, "image_shape": COLOUR},
         "autoencoder": {"latent_dim": 3, "channels": [4, 8], "hidden": 16, "image_shape": COLOUR},
         "gan": {"latent_dim": 8, "g_channels": 8, "d_channels": 4, "image_shape": COLOUR},
         "diffusion": {"block_channels": [8, 16], "train_timesteps": 50, "decode_steps": 3, "image_shape": COLOUR}}


@pytest.mark.parametrize("family", sorted(SMALL))
def test_colour_models_decode_train_and_reload_identically(family, tmp_path):
    torch.manual_seed(0)
    model = build_model(family, SMALL[family])
    z = model.sample_latent(3, seed=1)
    assert tuple(model.decode(z).shape) == (3, 3, 32, 32)
    logs = model.training_step(torch.rand(4, 3, 32, 32), model.make_optimizers(1e-3))
    assert all(np.isfinite(v) for v in logs.values())
    save_checkpoint(model, tmp_path / family, family, {"dataset": "shapes:train(20000 images, seed=0)"})
    reloaded = load_checkpoint(tmp_path / family, "cpu")
    model.eval()
    assert torch.equal(reloaded.decode(z), model.decode(z)) and reloaded.domain == "shapes"


def test_image_shapes_a_network_cannot_take_are_refused():
    assert check_image_shape([3, 32, 32], 4) == (3, 32, 32)
    for shape in ([2, 32, 32], [3, 30, 32], [3, 32], "big"):
        with pytest.raises(ValueError, match="image_shape must be"):
            check_image_shape(shape, 4)
    with pytest.raises(ValueError, match="likelihood must be"):
        build_model("vae", {"likelihood": "poisson"})


def test_the_beta_vae_loss_weighs_the_kl_by_beta_and_its_bound_stays_the_elbo():
    x = torch.rand(6, 3, 32, 32)
    plain = build_model("vae", SMALL["vae"])
    beta = build_model("vae", SMALL["vae"] | {"beta": 4.0})
    beta.load_state_dict(plain.state_dict())
    torch.manual_seed(3)
    elbo, reconstruction, kl = plain.elbo(x)
    torch.manual_seed(3)
    loss = beta.loss(x)["loss"]
    dims = x[0].numel() * np.log(2)
    torch.testing.assert_close(loss, -(reconstruction - 4.0 * kl).mean() / dims)
    torch.testing.assert_close(beta.bits_per_dim(x), plain.bits_per_dim(x))  # the bound ignores beta


def test_the_bernoulli_decoder_is_the_cross_entropy_and_claims_no_likelihood():
    model = build_model("vae", SMALL["vae"] | {"likelihood": "bernoulli"})
    x = torch.rand(5, 3, 32, 32)
    noise = torch.zeros(5, 4)
    _, reconstruction, _ = model.elbo(x, noise)
    mu, _ = model.posterior(x)
    logits = model.decoder(mu)
    expected = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(reconstruction, expected)
    torch.testing.assert_close(model.decode(mu), torch.sigmoid(logits))
    assert not model.has_likelihood and build_model("vae", SMALL["vae"]).has_likelihood
    with pytest.raises(NotImplementedError, match="defines no likelihood"):
        model.bits_per_dim(x)


def test_a_record_names_its_domain_or_its_dataset_does():
    assert record_domain({"training": {"domain": "shapes"}}) == "shapes"
    assert record_domain({"training": {"dataset": "shapes:train(20000 images, seed=0)"}}) == "shapes"
    assert record_domain({"training": {"dataset": "folder:/somewhere"}}) is None
    assert record_domain({"training": {"dataset": "mnist-shipped-14k:train(seed=0)"}}) == "digits"
    assert record_domain({}) == "digits"
    assert load_dataset("shapes", "heldout").domain == "shapes"


def test_an_exported_pipeline_carries_its_domain_and_record(tmp_path):
    model = build_model("diffusion", SMALL["diffusion"])
    model.domain = "shapes"
    model.checkpoint_record = {"training": {"steps": 7}, "metrics": {"fid": 1.5}}
    folder = export_pipeline(model, tmp_path / "pipe")
    opened = load_model(folder, "cpu")
    assert opened.domain == "shapes" and opened.checkpoint_record["metrics"] == {"fid": 1.5}
    assert tuple(opened.image_shape) == (3, 32, 32)
    (folder / PIPELINE_RECORD).unlink()
    assert load_model(folder, "cpu").domain is None  # a user's own pipeline: data the explorer does not know
    (folder / PIPELINE_RECORD).write_text(json.dumps({"domain": "faces"}))
    with pytest.raises(OpenError, match="a domain this version does not know"):
        load_model(folder, "cpu")


def test_the_domain_reads_the_truth_back():
    images, factors = generate(300, seed=11)
    x = to_tensor(images)
    domain = domain_of("shapes")
    captions = domain.captions(x, domain.classifier("cpu"))
    read_shapes = [SHAPES.index(c.split()[0]) for c in captions]
    assert np.mean(np.array(read_shapes) == factors["shape"]) > 0.95  # the measurer's held-out accuracy: 100%
    measures = domain.edit_measures((3, 32, 32))
    assert measures.sliders == tuple(RANGES) and measures.circular == CIRCULAR and not measures.classes
    table = measures.table(x)
    for i, name in enumerate(measures.names):
        error = measures.difference(table[:, i:i + 1], factors[name][:, None], [i])[:, 0]
        if name == "rotation":
            error = error[factors["shape"] != SHAPES.index("circle")]  # a circle's is not in its picture
        spread = (RANGES[name][1] - RANGES[name][0]) / np.sqrt(12)
        assert np.sqrt(np.mean(error ** 2)) < 0.25 * spread, name
    assert domain.heldout().shape == (2000, 3, 32, 32) and domain.heldout_labels().shape == (2000,)


def factor_table(n: int, seed: int) -> dict:
    _, factors = generate(n, seed)
    return factors


def test_a_perfect_code_scores_near_one_and_an_entangled_code_near_zero():
    factors = factor_table(2000, 5)
    # a perfect code: one coordinate per factor, each a monotone function of its factor alone (circular ones
    # cut where they start, which keeps the coordinate one-to-one with the factor)
    perfect = np.stack([np.asarray(factors[name], np.float64) for name in FACTORS], 1)
    scores = disentanglement(perfect, factors)
    assert scores["mig"] > 0.5 and scores["dci_disentanglement"] > 0.7, scores
    mixing = np.random.default_rng(0).normal(size=(len(FACTORS), len(FACTORS)))
    scores_mixed = disentanglement(perfect @ mixing, factors)
    assert scores_mixed["mig"] < 0.5 * scores["mig"], (scores, scores_mixed)
    assert scores_mixed["dci_disentanglement"] < 0.6 * scores["dci_disentanglement"], (scores, scores_mixed)
    noise = np.random.default_rng(1).normal(size=(2000, 10))
    scores_noise = disentanglement(noise, factors)
    assert scores_noise["mig"] < 0.05 and scores_noise["dci_informativeness"] < 0.05, scores_noise


def test_coverage_of_the_real_data_is_whole_and_of_one_corner_is_not():
    factors = factor_table(1000, 6)
    full = coverage(factors | {"shape": factors["shape"].astype(np.int64)})
    assert full["mean_range_coverage"] == 1.0 and full["rarest_shape_share"] > 0.28
    corner = {name: np.full(1000, RANGES[name][0] + 0.1) for name in RANGES} | {"shape": np.zeros(1000, np.int64)}
    poor = coverage(corner)
    assert poor["mean_range_coverage"] == 0.1 and poor["rarest_shape_share"] == 0.0
