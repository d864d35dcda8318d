"""Domains: what a kind of data offers the views. A model names its domain (`LatentModel.domain`): "digits" for
the models trained on MNIST, "shapes" for those trained on the colour world of known factors, None for a model opened from elsewhere, whose data the explorer does not know. Views ask
the model's domain, never the model's name or family, how to caption an image, prepare an upload, measure
images and where held-out data is:

    domain = domain_of(model)
    domain.captions(images, classifier)   # a short reading per image ("7 98%"), or "" where it reads nothing
    domain.prepare_upload(source, model.image_shape)   # any picture -> (C, H, W) floats in [0, 1]
    domain.measure(images)                # named figures per image (generic.measure for every domain)
    domain.edit_measures(image_shape)     # what named edit sliders and locks are fitted to (explorer.attributes)
    domain.heldout()                      # held-out images to map and noise, or None
    domain.heldout_labels()               # their classes (the latent map colours by them), or None
    domain.classifier(device)             # a domain with classes: what reads them (captions, class locks)
    domain.noun, domain.item              # what its images are called ("digits", "digit"; "shapes", "image")
    domain.class_names, domain.class_kind # its classes ("0".."9"; circle, square, triangle) and what one is
"""

from __future__ import annotations

from . import digits, generic, shapes

DOMAINS = {"digits": digits.DOMAIN, "shapes": shapes.DOMAIN, None: generic.DOMAIN}


def domain_of(model_or_domain):
    """The Domain for a model (by its `domain`), or for a domain's name; a domain this version does not know
    falls back to the generic one, whose measures any image has."""
    name = model_or_domain if isinstance(model_or_domain, str) or model_or_domain is None else model_or_domain.domain
    return DOMAINS.get(name, generic.DOMAIN)
