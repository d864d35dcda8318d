"""Opening and sampling a user's own diffusers pipeline, measured against diffusers itself in the same run.

    python benchmarks/own_model.py [--batch 8] [--steps 50] [--repeats 3]

The pipeline has the Diffusion Models Class butterfly UNet's shape (3x32x32, blocks 64/128/128/256, attention in
the third down and second up block, two layers per block: the class's unit 1 notebook), with random weights
saved by diffusers in a temporary folder: sampling costs the same whatever the weights. Prints

- opening: explorer.load_model(folder) against DDIMPipeline.from_pretrained(folder), best of --repeats;
- decode: our deterministic DDIM decode of a batch against DDIMPipeline for the same noise and steps
  (their ratio, target <= 1.1), runs interleaved so both see the same machine, median of --repeats;
- the first Denoise frame: from the tab's handler being called to its first frame (x_t and x_0 of step 1),
  target <= 300 ms, median of --repeats;
- with --fit: the Edit tab's background fit of the edit directions (principal, then the generic measures' named
  sliders) from an empty cache, as the server runs it, with the progress line it shows halfway, and the first
  slider move afterwards (brightness +1, contrast locked) with what it measured."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusers import DDIMPipeline, DDPMPipeline, DDPMScheduler, UNet2DModel  # noqa: E402

from explorer import load_model  # noqa: E402
from explorer.ui import denoise  # noqa: E402
from explorer.ui.models import ModelCache  # noqa: E402


def butterfly_unet() -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
                       block_out_channels=(64, 128, 128, 256),
                       down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))


def timed(work) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit", action="store_true", help="also time the background fit of the edit directions")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="butterfly-pipeline-"))
    unet = butterfly_unet()
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000)).save_pretrained(folder)
    print(f"UNet: {sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M parameters, 3x32x32; torch threads "
          f"{torch.get_num_threads()}")

    ours_open = min(timed(lambda: load_model(folder, "cpu")) for _ in range(args.repeats))
    theirs_open = min(timed(lambda: DDIMPipeline.from_pretrained(folder)) for _ in range(args.repeats))
    print(f"opening: explorer.load_model {ours_open:.2f} s, DDIMPipeline.from_pretrained {theirs_open:.2f} s (best of "
          f"{args.repeats}; target: under 5 s)")

    model = load_model(folder, "cpu")
    model.config.decode_steps = args.steps
    pipe = DDIMPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    z = torch.randn((args.batch, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    ours, theirs = [], []
    for _ in range(args.repeats):  # interleaved: a machine that slows down slows both
        ours.append(timed(lambda: model.decode(z)))
        theirs.append(timed(lambda: pipe(batch_size=args.batch, generator=torch.Generator().manual_seed(0),
                                         num_inference_steps=args.steps, eta=0.0, output_type="pt")))
    ratio = statistics.median(o / t for o, t in zip(ours, theirs))
    print(f"decode of {args.batch} at {args.steps} DDIM steps: ours {statistics.median(ours):.2f} s, diffusers' "
          f"DDIMPipeline {statistics.median(theirs):.2f} s; ratio {ratio:.3f} (median of {args.repeats}; target <= 1.1)")

    models = ModelCache("cpu", names=[], opened={"butterflies": model})
    first = []
    for seed in range(args.repeats):
        began = time.perf_counter()
        frames = denoise.run_steps(models, "butterflies", seed, "ddim", args.steps, 0.0)
        next(frames)
        first.append(time.perf_counter() - began)
        frames.close()
    print(f"first Denoise frame: {statistics.median(first) * 1000:.0f} ms after Run (median of {args.repeats}; "
          "target <= 300 ms)")
    if args.fit:
        fit_figures(model)


def fit_figures(model) -> None:
    """The background fit as `app.py --model` runs it, into an empty cache of its own."""
    import os

    from explorer.ui import edit, sample

    os.environ["LATENT_EXPLORER_CACHE"] = tempfile.mkdtemp(prefix="explorer-cache-")
    models = ModelCache("cpu", names=[], opened={"butterflies": model})
    began = time.perf_counter()
    (thread,) = models.fit_opened_in_background()
    shown = ""
    while thread.is_alive():
        thread.join(timeout=5)
        line = models.fit_progress()
        if line and not shown and "min left" in line:
            shown = line
    print(f"background fit of the edit directions: {time.perf_counter() - began:.0f} s "
          f"({model.config.decode_steps} DDIM steps per decode); the Edit tab said: {shown}")
    pick, _ = sample.pick_sample(models, sample.grid_recipe("butterflies", 0, 1.0, 4, "any"), 0)
    settings = edit.open_pick(models, pick)[2]
    settings = edit.apply_control(settings, "lock:contrast", True)
    began = time.perf_counter()
    _, moved, readout = edit.move(models, pick, settings, "brightness", 1.0)
    fits = models.attributes("butterflies").record["attributes"]
    rows = [r for r in readout.split("<tr>") if r.startswith("<td>brightness") or r.startswith("<td>contrast")]
    print(f"first brightness +1 move (contrast locked): {time.perf_counter() - began:.1f} s; held-out R^2 "
          + ", ".join(f"{n} {fits[n]['heldout_r2']:.2f}" for n in fits) + "; readout rows: "
          + " | ".join(r.replace("</td><td>", " ").replace("<td>", "").split("</td></tr>")[0] for r in rows))


if __name__ == "__main__":
    main()
