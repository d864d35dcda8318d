"""One-call GPU check: `python benchmarks/gpu_check.py` on a machine with CUDA (a few minutes).

For every shipped model, and for the app's own ModelCache on "cuda":
1. the model and the evaluation classifier load on CUDA, and the app's cache puts every model there;
2. the same latents (sample_latent draws them on the CPU from the seed, then moves them) decode to the same
   images on CUDA as on the CPU: the largest pixel difference and the share of pixels more than one grey level
   apart are printed, against a tolerance per family (TF32 is switched off, so matrix products are full
   float32 on both). Sampling that draws discrete values from probabilities (PixelCNN's quantiles, the RBM's
   coin flips) can flip a draw on a last-digit difference, and one flipped pixel changes every later one, so
   for those the share of differing pixels is reported, not required to be 0;
3. sampling time per image on each device (CUDA synchronised), and the speed-up.
Exit status 0 when every check passes, 1 when one fails, 2 without CUDA. Prints a Markdown table.
`--device cpu` runs the same script against the CPU itself (every difference 0): a dry run of the script on a
machine without a GPU.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import explorer  # noqa: E402
from explorer.metrics import load_classifier  # noqa: E402
from explorer.ui.models import ModelCache  # noqa: E402

SAMPLES = 16
# largest pixel difference allowed, CPU vs CUDA, per family; discrete samplers are reported, not held to one
TOLERANCE = {"vae": 1e-3, "cvae": 1e-3, "autoencoder": 1e-3, "gan": 1e-3, "flow": 5e-3, "diffusion": 2e-2}
DISCRETE = {"pixelcnn", "rbm"}


def timed_decode(model, z) -> tuple[torch.Tensor, float]:
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    with torch.inference_mode():
        x = model.decode(z)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return x.cpu(), (time.perf_counter() - began) * 1000 / len(z)


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (the check), or cpu (a dry run of the script)")
    device = parser.parse_args().device
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: this check needs one (run it where the device tool lends a GPU)")
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    machine = torch.cuda.get_device_name(0) if device == "cuda" else "CPU against itself (dry run)"
    print(f"# GPU check: {machine}, torch {torch.__version__}\n")
    failures = []
    cache = ModelCache(device)
    classifier = cache.classifier()
    if next(classifier.parameters()).device.type != device:
        failures.append(f"the app's classifier is not on {device}")
    print(f"| model | family | on {device} (app) | max pixel diff | pixels > 1/255 apart | tolerance | CPU ms/image | CUDA ms/image | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in explorer.list_models():
        on_cuda = cache.get(name)
        cpu = explorer.load_model(name, "cpu")
        z = cpu.sample_latent(SAMPLES, seed=0, temperature=cpu.default_temperature)
        assert torch.equal(z, on_cuda.sample_latent(SAMPLES, seed=0, temperature=cpu.default_temperature).cpu())
        timed_decode(on_cuda, z[:2].to(device))  # warm-up: CUDA kernels load and cuDNN picks its algorithms
        x_cpu, cpu_ms = timed_decode(cpu, z)
        x_cuda, cuda_ms = timed_decode(on_cuda, z.to(device))
        difference = (x_cpu - x_cuda).abs()
        apart = float((difference > 1 / 255).float().mean())
        family = cpu.family
        tolerance = TOLERANCE.get(family)
        ok_device = on_cuda.device.type == device
        ok = ok_device and (family in DISCRETE or float(difference.max()) <= tolerance)
        if not ok:
            failures.append(f"{name}: device {on_cuda.device}, max difference {float(difference.max()):.2g}")
        print(f"| {name} | {family} | {'yes' if ok_device else 'NO'} | {float(difference.max()):.2g} | {apart:.2%} | "
              f"{'reported' if family in DISCRETE else f'{tolerance:g}'} | {cpu_ms:.1f} | {cuda_ms:.2f} | {cpu_ms / cuda_ms:.0f}x |")
    images = torch.rand(64, 1, 28, 28)
    probs_cpu = load_classifier("cpu").predict(images)[0]
    probs_cuda = classifier.predict(images)[0]
    print(f"\nclassifier: max probability difference CPU vs CUDA {float((probs_cpu - probs_cuda).abs().max()):.2g}")
    print("\n" + ("PASS" if not failures else "FAIL:\n" + "\n".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
