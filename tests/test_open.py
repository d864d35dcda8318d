"""The one door (explorer.open): diffusers pipeline folders saved by diffusers itself in the test (random small
weights), checked against diffusers' own pipelines; the Hugging Face cache with the hub offline; our own
checkpoint folders anywhere; Python adapters; the refusals; and the export round trip."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

import explorer
from explorer import samplers
from explorer.checkpoint import save_checkpoint
from explorer.export import export_pipeline
from explorer.open import OpenError, load_model

from conftest import tiny_model

PREDICTIONS = ("epsilon", "sample", "v_prediction")


def small_unet(channels: int = 3, size: int = 16, seed: int = 0) -> UNet2DModel:
    """A UNet2DModel of the kind the diffusers tutorial trains (attention in the lower block), tiny."""
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, layers_per_block=1,
                       block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=8)


def save_pipeline(folder: Path, scheduler=None, unet=None, **save) -> Path:
    scheduler = scheduler or DDPMScheduler(num_train_timesteps=100)
    DDPMPipeline(unet=unet or small_unet(), scheduler=scheduler).save_pretrained(folder, **save)
    return folder


def diffusers_ddim(folder: Path, seed: int, steps: int, batch: int = 2) -> torch.Tensor:
    pipe = DDIMPipeline.from_pretrained(folder)  # converts a DDPM scheduler to DDIM, as it does for everyone
    pipe.set_progress_bar_config(disable=True)
    return pipe(batch_size=batch, generator=torch.Generator().manual_seed(seed), num_inference_steps=steps, eta=0.0,
                output_type="pt").images


def same_noise(model, seed: int, batch: int = 2) -> torch.Tensor:
    """The x_T diffusers' pipelines draw from a CPU generator seeded `seed`."""
    return torch.randn((batch, *model.latent_shape), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("kind", [DDPMScheduler, DDIMScheduler])
def test_an_opened_pipeline_decodes_as_diffusers_ddim_pipeline_does(tmp_path, kind, prediction):
    folder = save_pipeline(tmp_path / "pipe", kind(num_train_timesteps=100, prediction_type=prediction,
                                                   beta_schedule="squaredcos_cap_v2"))
    model = load_model(folder, "cpu")
    assert (model.family, model.image_shape, model.domain) == ("diffusion", (3, 16, 16), None)
    z = same_noise(model, seed=5)
    for steps in (7, 50):  # 7: where a hand-written DDIM stepped to t=856 and diffusers steps to t=857
        model.config.decode_steps = steps
        torch.testing.assert_close(model.decode(z), diffusers_ddim(folder, 5, steps), atol=1e-5, rtol=0)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_every_timestep_spacing_steps_where_diffusers_steps(tmp_path, spacing):
    folder = save_pipeline(tmp_path / "pipe", DDPMScheduler(num_train_timesteps=100, timestep_spacing=spacing,
                                                            steps_offset=1 if spacing == "leading" else 0))
    model = load_model(folder, "cpu")
    model.config.decode_steps = 7
    torch.testing.assert_close(model.decode(same_noise(model, 3)), diffusers_ddim(folder, 3, 7), atol=1e-5, rtol=0)
    labels = [step.label for step in model.decode_steps(same_noise(model, 3, 1), steps=7)]
    scheduler = DDIMScheduler.from_config(model.scheduler_config)
    scheduler.set_timesteps(7)
    assert labels == [f"t={int(t)}" for t in scheduler.timesteps]


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_ddpm_steps_are_diffusers_ddpm_pipeline_from_the_same_generator(tmp_path, prediction):
    folder = save_pipeline(tmp_path / "pipe", DDPMScheduler(num_train_timesteps=40, prediction_type=prediction))
    model = load_model(folder, "cpu")
    generator = torch.Generator().manual_seed(11)
    x = torch.randn((2, *model.latent_shape), generator=generator)
    with torch.inference_mode():
        *_, last = samplers.denoise(model.predict, x, model.scheduler_config, "ddpm", 40, generator=generator)
    pipe = DDPMPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(batch_size=2, generator=torch.Generator().manual_seed(11), num_inference_steps=40, output_type="pt").images
    torch.testing.assert_close(((last.sample + 1) / 2).clamp(0, 1), theirs, atol=1e-5, rtol=0)


def test_ddim_with_eta_draws_its_noise_from_the_seed_and_steps_as_diffusers(tmp_path):
    folder = save_pipeline(tmp_path / "pipe")
    model = load_model(folder, "cpu")
    z = same_noise(model, 0, 1)
    runs = [[s.image for s in model.decode_steps(z, sampler="ddim", steps=10, eta=0.5, seed=s)] for s in (1, 1, 2)]
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))  # the seed decides the noise
    assert not torch.equal(runs[0][-1], runs[2][-1])
    steps = list(model.decode_steps(z, sampler="ddim", steps=10, eta=0.5, seed=1))
    scheduler = samplers.scheduler_for(model.scheduler_config, "ddim", 10)
    t, prev = int(scheduler.timesteps[3]), int(scheduler.timesteps[3]) - 10
    abar, abar_prev = float(scheduler.alphas_cumprod[t]), float(scheduler.alphas_cumprod[prev])
    sigma = 0.5 * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)) ** 0.5  # Eq. 16 of Song et al.
    assert steps[3].info["sigma"] == pytest.approx(sigma, rel=1e-6)


def test_ddim_inversion_is_diffusers_inverse_scheduler_over_the_decodes_timesteps(tmp_path):
    folder = save_pipeline(tmp_path / "pipe")
    model = load_model(folder, "cpu")
    x0 = torch.rand(2, *model.image_shape)
    z = model.encode(x0, steps=10)
    inverse = samplers.scheduler_for(model.scheduler_config, "inverse", 10)
    forward = samplers.scheduler_for(model.scheduler_config, "ddim", 10)
    assert sorted(int(t) for t in inverse.timesteps) == sorted(int(t) for t in forward.timesteps)
    x = x0 * 2 - 1
    with torch.inference_mode():
        for t in inverse.timesteps:
            x = inverse.step(model.predict(x, int(t)), int(t), x).prev_sample
    torch.testing.assert_close(z, x)


def test_gradient_decode_is_the_same_ddim_with_autograd_on(tmp_path):
    model = load_model(save_pipeline(tmp_path / "pipe"), "cpu")
    z = same_noise(model, 2, 1)
    model.config.decode_steps = 8
    torch.testing.assert_close(model.gradient_decode(z, steps=8), model.decode(z), atol=1e-6, rtol=0)
    moving = z.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model.gradient_decode(moving).sum(), moving)
    assert gradient.abs().sum() > 0


def test_fp16_variant_weights_open_in_float32(tmp_path):
    unet = small_unet()
    folder = save_pipeline(tmp_path / "pipe", unet=small_unet().half(), variant="fp16")
    assert (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    model = load_model(folder, "cpu")
    weight = model.unet.conv_in.weight
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, unet.conv_in.weight.half().float(), atol=0, rtol=0)
    assert model.decode(same_noise(model, 0, 1)).isfinite().all()


def test_pickled_bin_weights_are_read_weights_only(tmp_path):
    folder = save_pipeline(tmp_path / "pipe", safe_serialization=False)
    assert (folder / "unet" / "diffusion_pytorch_model.bin").is_file()
    model = load_model(folder, "cpu")
    torch.testing.assert_close(model.decode(same_noise(model, 1)), diffusers_ddim(folder, 1, 50), atol=1e-5, rtol=0)


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {RunsCode.marker}",))


def test_a_bin_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    folder = save_pipeline(tmp_path / "pipe", safe_serialization=False)
    RunsCode.marker = tmp_path / "it-ran"
    weights = folder / "unet" / "diffusion_pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    state["conv_in.weight"] = RunsCode()
    with open(weights, "wb") as handle:
        pickle.dump(state, handle)
    with pytest.raises(OpenError, match="weights-only loader refuses"):
        load_model(folder, "cpu")
    assert not RunsCode.marker.exists()


def test_custom_code_and_other_pipelines_are_refused_before_anything_loads(tmp_path):
    folder = save_pipeline(tmp_path / "pipe")
    index = json.loads((folder / "model_index.json").read_text())
    custom = {**index, "unet": ["my_unets", "MyUNet"]}
    (folder / "model_index.json").write_text(json.dumps(custom))
    with pytest.raises(OpenError, match="asks for custom code: its unet is MyUNet from 'my_unets'"):
        load_model(folder, "cpu")
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(OpenError, match="holds a StableDiffusionPipeline; the explorer opens DDPMPipeline and DDIMPipeline"):
        load_model(folder, "cpu")
    (folder / "model_index.json").write_text(json.dumps({**index, "scheduler": ["diffusers", "EulerDiscreteScheduler"]}))
    with pytest.raises(OpenError, match="scheduler is diffusers' EulerDiscreteScheduler"):
        load_model(folder, "cpu")
    (folder / "model_index.json").write_text("{not json")
    with pytest.raises(OpenError, match="not readable JSON"):
        load_model(folder, "cpu")


def hub_cache(root: Path, repo_id: str, pipeline: Path) -> Path:
    """The Hugging Face cache's layout for one repo: models--owner--name/{refs/main, snapshots/REVISION/...}."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.parent.mkdir(parents=True)
    pipeline.rename(snapshot)
    return snapshot


def test_a_repo_id_opens_from_the_hugging_face_cache_with_the_hub_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    cache = tmp_path / "hub"
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    snapshot = hub_cache(cache, "someone/sd-class-butterflies-16", save_pipeline(tmp_path / "pipe"))
    model = load_model("someone/sd-class-butterflies-16", "cpu")
    assert model.config.source == "someone/sd-class-butterflies-16"
    torch.testing.assert_close(model.decode(same_noise(model, 4)), diffusers_ddim(snapshot, 4, 50), atol=1e-5, rtol=0)
    with pytest.raises(OpenError, match="someone/absent is not in the local Hugging Face cache.*hf download someone/absent"):
        load_model("someone/absent", "cpu")


def test_our_checkpoint_folder_opens_from_anywhere(tmp_path):
    model = tiny_model("vae")
    folder = save_checkpoint(model, tmp_path / "elsewhere" / "my-vae", "vae")
    opened = load_model(folder, "cpu")
    z = model.sample_latent(3, seed=0)
    assert torch.equal(opened.decode(z), model.decode(z))
    with pytest.raises(OpenError, match="neither a checkpoint of this explorer"):
        load_model(tmp_path, "cpu")
    with pytest.raises(OpenError, match="not a shipped model"):
        load_model("no-such-thing", "cpu")


ADAPTER = '''
import torch
from torch import nn
from explorer import Adapter

class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 3 * 8 * 8)
    def forward(self, z):
        return torch.tanh(self.linear(z)).view(-1, 3, 8, 8)

def make():
    generator = Generator()
    return Adapter(decode=generator, latent_shape=(4,), image_shape=(3, 8, 8), output_range=(-1, 1), name="toy")

def not_an_adapter():
    return 42
'''


def test_a_python_adapter_wraps_any_generator(tmp_path):
    (tmp_path / "my_model.py").write_text(ADAPTER)
    model = load_model(f"{tmp_path / 'my_model.py'}:make", "cpu")
    assert (model.family, model.image_shape, model.latent_shape, model.can_encode) == ("adapted", (3, 8, 8), (4,), False)
    z = model.sample_latent(5, seed=0)
    images = model.decode(z)
    expected = (model.adapter.decode(z) + 1) / 2
    torch.testing.assert_close(images, expected)
    with pytest.raises(OpenError, match=r"must return an explorer.Adapter, got int"):
        load_model(f"{tmp_path / 'my_model.py'}:not_an_adapter", "cpu")
    with pytest.raises(OpenError, match="has no function 'absent'"):
        load_model(f"{tmp_path / 'my_model.py'}:absent", "cpu")


def test_export_writes_a_pipeline_diffusers_loads_and_samples_as_we_do(tmp_path):
    ours = tiny_model("diffusion")
    ours.config.decode_steps = 7
    folder = export_pipeline(ours, tmp_path / "exported")
    pipe = DDPMPipeline.from_pretrained(folder)
    for name, weight in ours.unet.state_dict().items():
        assert torch.equal(pipe.unet.state_dict()[name], weight), name
    z = same_noise(ours, 9)
    torch.testing.assert_close(ours.decode(z), diffusers_ddim(folder, 9, 7), atol=1e-5, rtol=0)
    reopened = load_model(folder, "cpu")
    reopened.config.decode_steps = 7
    assert torch.equal(reopened.decode(z), ours.decode(z))
    with pytest.raises(ValueError, match="only diffusion models export"):
        export_pipeline(tiny_model("vae"), tmp_path / "vae")


def test_public_names():
    assert explorer.load_model is load_model and explorer.OpenError is OpenError
