"""Checkpoints: a folder with config.json (how to rebuild the model and how it was made) and
model.safetensors (the weights). Nothing is pickled, so loading a checkpoint cannot run code.

Training state for resuming (optimiser moments, raw weights beside the EMA ones) uses the same two
formats: nested dicts are split into a flat safetensors file of tensors and a JSON file of everything else.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .base import LatentModel, pick_device
from .models import model_class

FORMAT_VERSION = 1
CHECKPOINTS_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
CONFIG_FILE, WEIGHTS_FILE, SAMPLES_FILE = "config.json", "model.safetensors", "samples.png"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded, with the reason and what to do."""


def save_checkpoint(model: torch.nn.Module, folder: str | Path, family: str, training: dict | None = None,
                    metrics: dict | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(weights, str(folder / WEIGHTS_FILE))
    record = {"format": FORMAT_VERSION, "family": family, "config": dataclasses.asdict(model.config),
              "training": training or {}, "metrics": metrics or {}}
    (folder / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return folder


def read_record(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a checkpoint: it has no {CONFIG_FILE}")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}); the checkpoint is corrupt") from error
    if not isinstance(record, dict) or not {"family", "config"} <= record.keys():
        raise CheckpointError(f"{path} lacks the 'family' and 'config' entries a checkpoint needs")
    if record.get("format", FORMAT_VERSION) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format {record['format']}; this version reads up to {FORMAT_VERSION}")
    return record


def build_model(family: str, config: dict) -> torch.nn.Module:
    try:
        cls = model_class(family)
    except KeyError as error:
        raise CheckpointError(str(error.args[0])) from None
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise CheckpointError(f"config has settings a {family} model does not know: {', '.join(unknown)}")
    try:
        return cls(cls.config_class(**config))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"cannot build a {family} model from this config: {error}") from error


def load_checkpoint(folder: str | Path, device: str | torch.device | None = None) -> torch.nn.Module:
    """Rebuild the model from config.json and load its weights, checking every name and shape. Built outside
    inference mode whatever the caller's mode, so that gradients can flow through a shared, cached model
    (GAN inversion, the digit hold of attribute edits)."""
    with torch.inference_mode(False):
        return _load_checkpoint(Path(folder), device)


def _load_checkpoint(folder: Path, device) -> torch.nn.Module:
    record = read_record(folder)
    model = build_model(record["family"], record["config"])
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS_FILE}")
    try:
        weights = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file ({error}); it is corrupt") from error
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{weights_path} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    wrong = [f"{k}: {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items() if weights[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{weights_path} has weights of the wrong shape for its config: {wrong[:3]}")
    model.load_state_dict(weights)
    model.checkpoint_record = record
    model.checkpoint_path = folder
    return model.to(pick_device(device)).eval()


def resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if (path / CONFIG_FILE).is_file():
        return path
    if (CHECKPOINTS_DIR / str(name_or_path) / CONFIG_FILE).is_file():
        return CHECKPOINTS_DIR / str(name_or_path)
    raise CheckpointError(f"no checkpoint named {str(name_or_path)!r}; known: {', '.join(list_models()) or 'none'}")


def list_models(kind: str = "generative") -> list[str]:
    """Names of the checkpoints under checkpoints/ ('generative' ones, or 'all' including the classifier)."""
    names = []
    for folder in sorted(CHECKPOINTS_DIR.glob(f"*/{CONFIG_FILE}")):
        try:
            family = read_record(folder.parent)["family"]
        except CheckpointError:
            continue
        if kind == "all" or issubclass(model_class(family), LatentModel):
            names.append(folder.parent.name)
    return names


def load_model(name_or_path: str | Path, device: str | torch.device | None = None) -> LatentModel:
    """A shipped checkpoint by name, or any checkpoint folder by path; on `device` (None picks the best)."""
    return load_checkpoint(resolve(name_or_path), device)


# --- training state -------------------------------------------------------------------------------------


def _split(tree, prefix: str, tensors: dict):
    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree.detach().cpu().contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(tree, dict):
        return {"__dict__": [[_split(k, f"{prefix}.k{i}", tensors), _split(v, f"{prefix}.{i}", tensors)]
                             for i, (k, v) in enumerate(tree.items())]}
    if isinstance(tree, (list, tuple)):
        return {"__list__": [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]}
    return tree


def _join(tree, tensors: dict):
    if isinstance(tree, dict) and "__tensor__" in tree:
        return tensors[tree["__tensor__"]]
    if isinstance(tree, dict) and "__dict__" in tree:
        return {_join(k, tensors): _join(v, tensors) for k, v in tree["__dict__"]}
    if isinstance(tree, dict) and "__list__" in tree:
        return [_join(v, tensors) for v in tree["__list__"]]
    return tree


def save_state(folder: str | Path, state: dict) -> None:
    """Save a nested dict of tensors and plain values as state.safetensors + state.json, atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, "s", tensors)
    save_file(tensors, str(folder / "state.safetensors.tmp"))
    (folder / "state.json.tmp").write_text(json.dumps(skeleton))
    (folder / "state.safetensors.tmp").replace(folder / "state.safetensors")
    (folder / "state.json.tmp").replace(folder / "state.json")


def load_state(folder: str | Path) -> dict | None:
    folder = Path(folder)
    if not (folder / "state.json").is_file():
        return None
    return _join(json.loads((folder / "state.json").read_text()), load_file(str(folder / "state.safetensors")))
