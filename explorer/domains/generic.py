"""The domain of images the explorer knows nothing about (a user's own butterflies, faces, shapes): uploads
are resized and centre-cropped to the model's size, in colour for a colour model, and the measures are ones
any image has."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

from ..data import DataError, open_image

# figures any image has, in the order the views list them; the colour ones only for colour images
MEASURES = ("brightness", "contrast", "colourfulness", "hue", "sharpness", "centre x", "centre y", "foreground size")
COLOUR_ONLY = ("colourfulness", "hue")
UNITS = {"brightness": "of white", "contrast": "of white", "colourfulness": "Hasler-Suesstrunk", "hue": "deg",
         "sharpness": "Laplacian^2", "centre x": "of the width", "centre y": "of the height",
         "foreground size": "share unlike the border"}


class Generic:
    name = None
    has_classes = False  # captions() reads a class from each image (with the domain's classifier)
    has_heldout = False  # heldout() gives images of the data (to map, to noise)
    noun, item, class_kind, class_names = "images", "image", "class", ()  # its images, one; it has no classes
    about = "images"

    def captions(self, images: torch.Tensor, classifier=None) -> list[str]:
        return ["" for _ in images]

    def heldout(self):
        return None

    def heldout_labels(self):
        return None

    def prepare_upload(self, source, image_shape) -> torch.Tensor:
        return fit_picture(source, image_shape)

    def measure(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        return measure(images)

    def edit_measures(self, image_shape):
        """What explorer.attributes fits named, lockable edit directions to: every measure this image shape has
        (the colour ones for colour images only), each a slider; hue is an angle."""
        from ..attributes import Measures

        names = tuple(n for n in MEASURES if image_shape[0] == 3 or n not in COLOUR_ONLY)
        return Measures(names, {n: UNITS[n] for n in names}, names, measure, circular={"hue": 360.0} if "hue" in names else {})


def fit_picture(source, image_shape) -> torch.Tensor:
    """Any picture -> (C, H, W) floats in [0, 1] at the model's size: turned upright by its EXIF tag, scaled so
    it covers H x W with its aspect kept, then the middle cut out (ImageOps.fit); kept in colour for a 3-channel
    model (alpha composited on white), grey for a 1-channel one."""
    channels, height, width = image_shape
    image = open_image(source)
    try:  # the pixels decoded, but a damaged EXIF block or palette is only read here
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        image = image.convert("RGB" if channels == 3 else "L")
        fitted = ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    except Exception as error:
        raise DataError(f"not a readable image: the file is damaged ({type(error).__name__})") from error
    array = np.asarray(fitted, dtype=np.float32) / 255
    return torch.from_numpy(array.reshape(height, width, channels)).permute(2, 0, 1).contiguous()


def measure(images: torch.Tensor) -> dict[str, np.ndarray]:
    """Per image (N, C, H, W) in [0, 1]: brightness (mean luma, Rec. 601), contrast (luma's standard
    deviation), colourfulness (Hasler & Suesstrunk 2003, on 0-1 values), mean hue in degrees (the circular mean
    of each pixel's hue weighted by its chroma), sharpness (mean squared Laplacian of luma), the luma-weighted
    centre of mass as fractions of the width and height (0.5 is the middle), and the share of pixels that
    differ from the border's median by over 0.2 (the foreground's size)."""
    x = images.detach().float().cpu().clamp(0, 1)
    n, channels, height, width = x.shape
    if channels == 3:
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        luma = 0.299 * r + 0.587 * g + 0.114 * b
    else:
        luma = x[:, 0]
    figures = {"brightness": luma.mean((1, 2)), "contrast": luma.flatten(1).std(1)}
    if channels == 3:
        rg, yb = r - g, 0.5 * (r + g) - b
        figures["colourfulness"] = (torch.sqrt(rg.flatten(1).std(1) ** 2 + yb.flatten(1).std(1) ** 2)
                                    + 0.3 * torch.sqrt(rg.flatten(1).mean(1) ** 2 + yb.flatten(1).mean(1) ** 2))
        # hue as an angle in the opponent plane (a = r - g/2 - b/2, b = sqrt(3)/2 (g - b)), chroma-weighted mean
        a, bb = r - 0.5 * (g + b), (3 ** 0.5 / 2) * (g - b)
        figures["hue"] = torch.rad2deg(torch.atan2(bb.sum((1, 2)), a.sum((1, 2)))) % 360
    laplacian = (luma[:, :-2, 1:-1] + luma[:, 2:, 1:-1] + luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:] - 4 * luma[:, 1:-1, 1:-1])
    figures["sharpness"] = (laplacian ** 2).flatten(1).mean(1) if height > 2 and width > 2 else torch.zeros(n)
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    mass = luma.sum((1, 2)).clamp_min(1e-8)
    figures["centre x"] = (luma.sum(1) * xs).sum(1) / mass
    figures["centre y"] = (luma.sum(2) * ys).sum(1) / mass
    border = torch.cat([luma[:, 0], luma[:, -1], luma[:, :, 0], luma[:, :, -1]], dim=1).median(1).values
    figures["foreground size"] = ((luma - border[:, None, None]).abs() > 0.2).float().flatten(1).mean(1)
    return {k: v.numpy().astype(np.float64) for k, v in figures.items()}


DOMAIN = Generic()
