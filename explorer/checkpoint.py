"""Checkpoints: a folder with config.json (how to rebuild the model and how it was made) and
model.safetensors (the weights). Nothing is pickled, so loading a checkpoint cannot run code.

Training state for resuming (optimiser moments, raw weights beside the EMA ones) uses the same two
formats: nested dicts are split into a flat safetensors file of tensors and a JSON file of everything else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
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


def weights_sha256(folder: str | Path) -> str:
    """sha256 of a checkpoint's model.safetensors bytes: what files fitted to these weights (attribute and
    principal directions) record, so that they can refuse other weights. safetensors writes the same bytes
    for the same tensors, so a checkpoint saved again with unchanged weights keeps its hash."""
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{Path(folder).name} has no {WEIGHTS_FILE}")
    return files_sha256([path])


def files_sha256(paths: list[Path]) -> str:
    """One sha256 over the bytes of these files, in order, read a megabyte at a time."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


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


def record_domain(record: dict) -> str | None:
    """The domain (explorer.domains) of the data a checkpoint was trained on, as its training record names it,
    or, in a record from before domains were recorded, as its dataset says (every such record without one is
    the digits', the only data there was)."""
    training = record.get("training", {})
    if "domain" in training:
        return training["domain"]
    dataset = str(training.get("dataset", ""))
    return "shapes" if dataset.startswith("shapes:") else None if dataset.startswith("folder:") else "digits"


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
    if isinstance(model, LatentModel):
        model.domain = record_domain(record)
    target = pick_device(device)
    if target.type == "mps" and isinstance(model, LatentModel) and model.needs_float64:
        raise CheckpointError(f"a {record['family']} model computes in float64, which Apple's MPS does not support; "
                              "load it on the CPU (device='cpu'); the app does so by itself")
    return model.to(target).eval()


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
            cls = model_class(family)
        except (CheckpointError, KeyError):  # damaged, or of a family this version does not know: not listed
            continue
        if kind == "all" or issubclass(cls, LatentModel):
            names.append(folder.parent.name)
    return names


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


STATE_FILE = "state.json"  # the commit point: names the tensor file that belongs to it
LEGACY_STATE_TENSORS = "state.safetensors"  # layout before state.json named its tensor file (still read)


def save_state(folder: str | Path, state: dict) -> None:
    """Save a nested dict of tensors and plain values as state.json + one state-NNNNNN.safetensors, atomically.

    1. the tensors go to a file with a new generation number, never the one the current state.json names,
    so a crash while writing leaves the current pair untouched; 2. state.json.tmp names that file and is
    flushed to disk; 3. replacing state.json with it is the commit point (a rename is atomic on POSIX and
    Windows), before which a reader sees the old pair and after which the new; 4. only then are the tensor
    files no longer named (the previous generation, a crashed attempt's, the old layout's) removed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, "s", tensors)
    current = _read_state_record(folder)
    generation = current["generation"] + 1 if current is not None and "generation" in current else 1
    name = f"state-{generation:06d}.safetensors"
    save_file(tensors, str(folder / name))  # 1.
    _fsync(folder / name)
    pending = folder / (STATE_FILE + ".tmp")
    pending.write_text(json.dumps({"generation": generation, "tensors": name, "tree": skeleton}))  # 2.
    _fsync(pending)
    pending.replace(folder / STATE_FILE)  # 3.
    for stale in [*folder.glob("state-*.safetensors"), folder / LEGACY_STATE_TENSORS]:  # 4.
        if stale.name != name and stale.is_file():
            stale.unlink()


def _fsync(path: Path) -> None:
    """Flush a written file to disk, so the rename that commits it cannot reach the disk before its bytes."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _read_state_record(folder: Path) -> dict | None:
    path = folder / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def load_state(folder: str | Path) -> dict | None:
    """The state save_state wrote, or None where there is none. Reads the older layout too (state.json the
    bare tree, tensors in state.safetensors), so a run saved before the change still resumes."""
    folder = Path(folder)
    record = _read_state_record(folder)
    if record is None:
        return None
    if "tensors" in record and "tree" in record:
        return _join(record["tree"], load_file(str(folder / record["tensors"])))
    return _join(record, load_file(str(folder / LEGACY_STATE_TENSORS)))
