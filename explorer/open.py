"""The one door every model comes in by: `load_model(source)` opens

1. a shipped checkpoint by name ("vae-mnist"), or one of this project's checkpoint folders anywhere on disk;
2. a folder written by diffusers' DDPMPipeline or DDIMPipeline `save_pretrained` (model_index.json, unet/ with
   a UNet2DModel, scheduler/ with a DDPM or DDIM scheduler): any size and channels, epsilon, sample or v
   prediction, fp32 or fp16 weights, `variant` files such as diffusion_pytorch_model.fp16.safetensors;
3. the same by Hugging Face repo id ("someone/sd-class-butterflies-32"), from the local cache (HF_HOME) only:
   nothing is ever downloaded;
4. "my_model.py:make", a Python file and a function in it returning an explorer.Adapter. This runs that
   file's code, so only the command line and Python take it, never the web page.

Nothing else runs code: a pipeline folder that asks for custom code is refused before anything is loaded,
and pickled `.bin` weights are read only by torch's weights-only loader (diffusers asks for it), which
refuses code."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pickle
import re
import sys
from pathlib import Path

import torch

from .base import LatentModel, pick_device
from .checkpoint import CHECKPOINTS_DIR, CONFIG_FILE, CheckpointError, files_sha256, list_models, load_checkpoint

PIPELINES = ("DDPMPipeline", "DDIMPipeline")
SCHEDULERS = ("DDPMScheduler", "DDIMScheduler")
WEIGHTS_STEM = "diffusion_pytorch_model"
# beside a pipeline the explorer exported (explorer.export): its domain and record; a pipeline without it is a
# user's own, of data the explorer does not know
PIPELINE_RECORD = "latent_explorer.json"
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class OpenError(CheckpointError):
    """A model that cannot be opened, with what was found and what to do."""


def load_model(source: str | Path, device: str | torch.device | None = None) -> LatentModel:
    """Open a model from any of the four kinds of source the module's docstring lists, on `device` (None:
    cuda, else mps, else cpu)."""
    text = str(source)
    if ".py:" in text and not Path(text).exists():
        return open_adapter(text, device)
    path = Path(text).expanduser()
    if path.is_dir():
        return open_folder(path, device)
    if (CHECKPOINTS_DIR / text / CONFIG_FILE).is_file():
        return load_checkpoint(CHECKPOINTS_DIR / text, device)
    if REPO_ID.match(text) and not path.exists():
        return open_folder(cached_repo(text), device, source=text)
    known = ", ".join(list_models()) or "none"
    raise OpenError(f"cannot open {text!r}: it is not a shipped model ({known}), a folder, a Hugging Face repo "
                    "id (owner/name) or a file.py:function adapter")


def open_folder(folder: Path, device=None, source: str | None = None) -> LatentModel:
    """One of our checkpoint folders, or a diffusers pipeline folder."""
    if (folder / CONFIG_FILE).is_file() and not (folder / "model_index.json").is_file():
        return load_checkpoint(folder, device)
    if (folder / "model_index.json").is_file():
        return open_pipeline(folder, device, source or folder.name)
    raise OpenError(f"{folder} is neither a checkpoint of this explorer ({CONFIG_FILE} + model.safetensors) nor a "
                    "diffusers pipeline folder (model_index.json)")


def cached_repo(repo_id: str) -> Path:
    """The folder of a Hugging Face repo in the local cache (HF_HOME), without touching the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        raise OpenError(f"{repo_id} is not in the local Hugging Face cache, and the explorer never downloads. On a "
                        f"machine with a network, fetch it with `hf download {repo_id}` (or "
                        f"`DDPMPipeline.from_pretrained('{repo_id}')` once), then open it again; HF_HOME says "
                        "where the cache is") from None


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OpenError(f"{path.parent.name}/{path.name} is not readable JSON ({error})") from error
    if not isinstance(value, dict):
        raise OpenError(f"{path.parent.name}/{path.name} is not a JSON object")
    return value


def component(index: dict, name: str, allowed: tuple[str, ...], folder_name: str) -> str:
    """The class model_index.json names for a component, refused unless it is one of diffusers' own `allowed`."""
    entry = index.get(name)
    if not (isinstance(entry, list) and len(entry) == 2):
        raise OpenError(f"{folder_name}'s model_index.json names no {name}; a DDPM or DDIM pipeline has a "
                        f"{name} ({' or '.join(allowed)})")
    library, cls = entry
    if library != "diffusers":
        raise OpenError(f"{folder_name} asks for custom code: its {name} is {cls} from {library!r}, not from "
                        "diffusers. The explorer runs no code from a model folder; nothing was loaded")
    if cls not in allowed:
        raise OpenError(f"{folder_name}'s {name} is diffusers' {cls}; the explorer opens a {' or a '.join(allowed)}")
    return cls


def weights_variant(unet_folder: Path) -> tuple[str | None, bool]:
    """(variant, safetensors?) of the UNet weights in a folder: plain safetensors first, then a variant's
    (diffusion_pytorch_model.fp16.safetensors), then pickled .bin files (read weights-only)."""
    for suffix, safe in ((".safetensors", True), (".bin", False)):
        if (unet_folder / f"{WEIGHTS_STEM}{suffix}").is_file():
            return None, safe
        variants = sorted(p.name[len(WEIGHTS_STEM) + 1:-len(suffix)] for p in unet_folder.glob(f"{WEIGHTS_STEM}.*{suffix}"))
        variants = [v for v in variants if v and "." not in v and "-of-" not in v]
        if variants:
            return ("fp16" if "fp16" in variants else variants[0]), safe
    raise OpenError(f"{unet_folder.parent.name}/unet has no weights ({WEIGHTS_STEM}.safetensors, a variant such as "
                    f"{WEIGHTS_STEM}.fp16.safetensors, or {WEIGHTS_STEM}.bin)")


def open_pipeline(folder: Path, device=None, source: str = "") -> LatentModel:
    """A DDPMPipeline or DDIMPipeline folder -> an OpenedDiffusion, its weights in float32 on `device`."""
    index = read_json(folder / "model_index.json")
    name = source or folder.name
    kind = index.get("_class_name")
    if kind not in PIPELINES:
        raise OpenError(f"{name} holds a {kind or 'pipeline of no named class'}; the explorer opens "
                        f"{' and '.join(PIPELINES)} folders (an unconditional UNet2DModel and its scheduler)")
    component(index, "unet", ("UNet2DModel",), name)
    component(index, "scheduler", SCHEDULERS, name)
    unet_config = read_json(folder / "unet" / "config.json")
    if unet_config.get("_class_name") != "UNet2DModel":
        raise OpenError(f"{name}/unet holds a {unet_config.get('_class_name')}, not a UNet2DModel")
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    scheduler_config = {k: v for k, v in read_json(scheduler_file).items() if not k.startswith("_")}
    prediction = scheduler_config.get("prediction_type", "epsilon")
    if prediction not in ("epsilon", "sample", "v_prediction"):
        raise OpenError(f"{name}'s scheduler predicts {prediction!r}; the explorer samples epsilon, sample and "
                        "v_prediction models")
    variant, safe = weights_variant(folder / "unet")
    from diffusers import UNet2DModel

    from .models.diffusion import OpenedDiffusion, OpenedDiffusionConfig

    try:
        with torch.inference_mode(False):
            unet = UNet2DModel.from_pretrained(folder, subfolder="unet", variant=variant, use_safetensors=safe,
                                               torch_dtype=torch.float32, local_files_only=True,
                                               low_cpu_mem_usage=False)  # (True needs accelerate, and warns without it)
    except Exception as error:  # diffusers raises OSError, ValueError, UnpicklingError, ...: all say why
        # diffusers re-raises torch's refusal as a bare OSError: the refusal is further down the chain
        chain, cause = [], error
        while cause is not None and len(chain) < 10:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        refused = any(isinstance(e, pickle.UnpicklingError) or "weights only load failed" in str(e).lower() for e in chain)
        why = ("its pickled .bin weights hold more than tensors, which torch's weights-only loader refuses (it "
               "would run code); save them as safetensors" if refused else f"{type(error).__name__}: {error}")
        raise OpenError(f"cannot read {name}'s UNet weights: {why}") from error
    config = OpenedDiffusionConfig(unet={k: v for k, v in dict(unet.config).items() if not k.startswith("_")},
                                   scheduler=scheduler_config, source=name)
    with torch.inference_mode(False):
        model = OpenedDiffusion(config, unet)
    # what directions fitted to it are filed under (latent.cached_principal_directions)
    model.weights_id = files_sha256(sorted((folder / "unet").glob(f"{WEIGHTS_STEM}*")))
    if (folder / PIPELINE_RECORD).is_file():
        from .domains import DOMAINS

        record = read_json(folder / PIPELINE_RECORD)
        domain = record.get("domain")
        if domain not in DOMAINS:
            raise OpenError(f"{name}/{PIPELINE_RECORD} names a domain this version does not know: {domain!r}")
        model.domain = domain
        model.checkpoint_record = {"training": record.get("training", {}), "metrics": record.get("metrics", {})}
    return model.to(pick_device(device)).eval()


def open_adapter(spec: str, device=None) -> LatentModel:
    """"path/to/file.py:function": import the file (running its code) and wrap what the function returns."""
    from .models.adapted import Adapter, AdaptedModel

    file_name, _, function = spec.rpartition(":")
    path = Path(file_name).expanduser()
    if not path.is_file():
        raise OpenError(f"no Python file {file_name!r} (an adapter is given as file.py:function)")
    module_name = f"explorer_adapter_{abs(hash(str(path.resolve())))}"
    loader = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module  # dataclasses and pickle-free torch code look their module up here
    loader.loader.exec_module(module)
    make = getattr(module, function, None)
    if not callable(make):
        raise OpenError(f"{path.name} has no function {function!r}")
    with torch.inference_mode(False):
        made = make()
    if not isinstance(made, Adapter):
        raise OpenError(f"{path.name}:{function}() must return an explorer.Adapter, got {type(made).__name__}")
    model = AdaptedModel(made, made.name or f"{path.stem}:{function}").to(pick_device(device)).eval()
    model.weights_id = adapter_fingerprint(model, path, function)
    return model


def adapter_fingerprint(model: LatentModel, path: Path, function: str) -> str:
    """What names an adapted model's weights in the explorer's cache (latent.cached_fit): a sha256 over its
    file, its function's name and the images it decodes from four fixed latents, so that new weights (wherever
    the function loads them from) or an edited decoder give a new name and a fresh fit."""
    probe = torch.randn((4, *model.latent_shape), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        images = model.decode(probe.to(model.device)).float().cpu().numpy()
    digest = hashlib.sha256(path.read_bytes())
    digest.update(function.encode())
    digest.update(images.tobytes())
    return digest.hexdigest()
