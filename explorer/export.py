"""Save one of our diffusion models as a diffusers pipeline folder, which `DDPMPipeline.from_pretrained` (or
`DDIMPipeline.from_pretrained`) loads and samples anywhere diffusers runs, and which explorer.open opens again:

    python -m explorer.export ddpm-mnist exported/ddpm-mnist

The folder holds model_index.json, unet/ (config.json and diffusion_pytorch_model.safetensors: the weights we
sample with) and scheduler/ (the DDPM scheduler config we train and sample with, trailing spacing included, so
diffusers' DDIMPipeline draws what our decode draws from the same noise), and latent_explorer.json beside them:
what diffusers does not keep and the explorer reads back on opening the folder (explorer.open.PIPELINE_RECORD):
the domain of the data it was trained on (its known factors, for the shapes) and the checkpoint's record (how
it was trained, its measured figures). diffusers ignores the file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .base import LatentModel
from .open import load_model


def export_pipeline(model: LatentModel, folder: str | Path) -> Path:
    """Write `model` (the diffusion family) as a DDPMPipeline folder; -> the folder."""
    if model.family != "diffusion":
        raise ValueError(f"only diffusion models export as a diffusers pipeline; this one is a {model.family} model")
    from diffusers import DDPMPipeline, DDPMScheduler

    from .open import PIPELINE_RECORD

    folder = Path(folder)
    scheduler = DDPMScheduler.from_config(model.scheduler_config)
    DDPMPipeline(unet=model.unet, scheduler=scheduler).save_pretrained(folder, safe_serialization=True)
    record = getattr(model, "checkpoint_record", {})
    (folder / PIPELINE_RECORD).write_text(json.dumps({"domain": model.domain, "training": record.get("training", {}),
                                                       "metrics": record.get("metrics", {})}, indent=2) + "\n")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m explorer.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a shipped diffusion model's name (ddpm-mnist) or any source explorer.open takes")
    parser.add_argument("folder", help="where to write the pipeline folder")
    args = parser.parse_args(argv)
    try:
        folder = export_pipeline(load_model(args.model, "cpu"), args.folder)
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {folder}: DDPMPipeline.from_pretrained({str(folder)!r}) loads it")


if __name__ == "__main__":
    main()
