"""The HTTP API: what every public endpoint is called, takes and returns, and what makes a raw REST call
(POST /gradio_api/call/NAME with {"data": [...]}) as safe and as clear as one made through gradio_client.

Four endpoints are plain functions registered here with gr.api (/decode, /edit, /edit_attributes,
/interpolate); four are the main buttons of tabs, wired in their tabs' build() (/sample, /encode, /denoise,
/compare). `publish`, called last in build_app, registers the first four and then, for all eight:

- names every parameter and every output, and describes each. A gr.api function's names and descriptions come
  from its signature and its docstring (Gradio's format: a summary, then "Parameters:" and "Returns:" lines); a
  button's from BUTTONS below, in the same format, because its handler is a lambda over the tab's components
  (Gradio shows such parameters as param_0, and an output without a label as value_18).
- fills in optional arguments left out of a raw REST call, as gradio_client does from the same defaults
  (Gradio itself refuses the call, quoting its internal components), and refuses a call that leaves out a
  required argument or sends too many, by name.
- gives a button's handler the very values the client sent when every input is a plain value: Gradio's
  gr.Number(precision=0) rounds 1.5 to 2 and true to 1 before any handler could refuse them. Every handler checks
  its own arguments (common.check_int and friends), so nothing is left unchecked.
- replaces, for every event of the app, Gradio's message for an input it cannot read, which quotes the value (for
  an upload, its temporary path on the server), with one that says what was wrong.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass

import gradio as gr
from gradio.components.api_component import Api
from PIL import UnidentifiedImageError

from . import edit, interpolate, sample
from .models import ModelCache

# The buttons' endpoints, documented as a gr.api function is: parameters in the order of the event's inputs (the
# build refuses a list that does not fit them); returns by the name each output shows (its label, or for an
# unlabelled Markdown its elem_id less the tab's prefix), "*" for every other. A gr.State output has no line.
BUTTONS = {
    "sample": """A grid of samples, as the Sample tab draws it: the same arguments always give the same grid.

    Parameters:
        model: the model's name, e.g. "vae-mnist" (the list shows them all)
        seed: the seed of the prior's draw, a whole number from 0 to 2^63 - 1
        temperature: the prior's scale (the truncation for GANs), from 0 to 2
        samples: how many samples, a whole number from 1 to 64
        digit: "any", or "0" to "9": the digit a conditional model (cvae-mnist) draws; other models ignore it
    Returns:
        samples (click to pick): the grid's images, each a PNG file, captioned #0, #1, ...
        seed: the seed used
        caption: what was drawn, in Markdown
    """,
    "encode": """Your own image, prepared as the model's data is (a digit made MNIST-style for a digits model; resized
    and centre-cropped to its size, in colour for a colour one) and encoded: its latent becomes the Edit tab's pick.

    Parameters:
        image: an image file of a digit (PNG, JPEG, GIF, BMP, TIFF or WebP; at most 40 megapixels), any colours
        model: the name of a model that can encode, e.g. "vae-mnist"
    Returns:
        as the model sees it: the prepared image (for a digits model MNIST-style, 28x28), enlarged, a PNG file
        reconstruction: the model's decoding of its latent, a PNG file
        encoded: the encoding method and the mean pixel error, in Markdown
    """,
    "denoise": """The generation process step by step, streamed: the newest step at most ten times a second, and the last.

    Parameters:
        model: the name of a model that generates in steps: ddpm-mnist (diffusion), flow-mnist, pixelcnn-mnist or rbm-mnist
        seed: the seed of the starting latent, a whole number from 0 to 2^63 - 1
        sampler: "ddpm" or "ddim" (diffusion only)
        steps: how many denoising steps, a whole number from 1 to 1000 (diffusion only)
        eta: DDIM's noise scale, from 0 (deterministic) to 1 (diffusion only)
    Returns:
        x_t: the current image, a PNG inline in the message (a data: URL)
        predicted x_0: the model's prediction of the finished image at this step (diffusion; else the image again), an inline PNG
        equation: the update that made this step, with its coefficients, in Markdown
        scrub through the stored steps: the scrubbing slider's range over the steps stored so far
        status: the step running and about how long is left, then what was done, in Markdown
        the first run's result, held: the panel the DDPM vs DDIM preset holds DDIM's digit in; a run's first message hides it (no picture)
    """,
    "compare": """One seed through every model, streamed as each model finishes.

    Parameters:
        seed: the seed every model draws its latents with, a whole number from 0 to 2^63 - 1
    Returns:
        status: what is running and about how long is left, in Markdown
        table: each finished model's family, latent shape, parameters, sampling time now and evaluation figures, in Markdown
        *: a model's grid of 8 samples, a PNG file (one output per model, named after it, filled in as it finishes)
    """,
}
# Gradio shows an output without a label as value_18; an unlabelled Markdown or HTML output (a label there changes
# nothing on the page) is named after its elem_id, less the tab's prefix: "sample-caption" -> "caption"
NAMED_BY_ELEM_ID = (gr.Markdown, gr.HTML)
# inputs a handler can take as the client sent them (JSON numbers, strings and booleans), unprocessed
PLAIN_INPUTS = (gr.Number, gr.Slider, gr.Dropdown, gr.Radio, gr.Checkbox, gr.Textbox)


@dataclass(frozen=True)
class Doc:
    summary: str
    parameters: dict[str, str]  # name -> description, in order
    returns: dict[str, str]


def parse_doc(text: str) -> Doc:
    """A docstring in Gradio's format -> its summary and its "name: description" lines."""
    summary, sections, section = [], {"Parameters:": {}, "Returns:": {}}, None
    for line in inspect.cleandoc(text).splitlines():
        line = line.strip()
        if line in sections:
            section = sections[line]
        elif section is None:
            summary.append(line)
        elif line:
            name, _, description = line.partition(":")
            section[name.strip()] = description.strip()
    return Doc(" ".join(filter(None, summary)), sections["Parameters:"], sections["Returns:"])


@dataclass(frozen=True)
class Endpoint:
    """What publish knows of one public endpoint: its name, its parameters' names and defaults."""
    api_name: str
    names: tuple[str, ...]
    defaults: tuple  # (has_default, default) per parameter

    def complete(self, values: list) -> None:
        """Fill the trailing optional arguments a raw call left out with their defaults, in place; refuse a call
        that leaves out a required one or sends too many."""
        if len(values) > len(self.names):
            raise gr.Error(f"/{self.api_name} takes at most {len(self.names)} arguments ({', '.join(self.names)}), "
                           f"got {len(values)}")
        missing = [name for name, (has_default, _) in zip(self.names[len(values):], self.defaults[len(values):])
                   if not has_default]
        if missing:
            raise gr.Error(f"/{self.api_name} needs {', '.join(missing)}: it takes {', '.join(self.names)}, "
                           f"and the call sent {len(values)} of them")
        values.extend(copy.deepcopy(default) for _, default in self.defaults[len(values):])


def unreadable_input(block_fn, index, block, value, is_input, original_error) -> str:
    """Blocks._format_processing_error's replacement: what was wrong with a value, never the value itself (an
    upload's value is its temporary path on the server, and so is the path in Pillow's message about it)."""
    label = getattr(block, "label", None) or block.get_block_name()
    if not is_input:
        return f'the server could not show its result in "{label}" ({type(original_error).__name__})'
    if isinstance(original_error, UnidentifiedImageError):
        problem = "it is not a readable image: use a PNG, JPEG, GIF, BMP, TIFF or WebP picture"
    elif isinstance(original_error, OSError):
        problem = f"it is not a readable image: the file is damaged or cut short ({type(original_error).__name__})"
    else:
        problem = f"it is not a value a {block.get_block_name()} takes ({type(original_error).__name__})"
    return f'"{label}" could not be read: {problem}'


def described(api_info, text: str, key: str):
    """A component's api_info method with `text` as its description in "Use via API" and /gradio_api/info (Gradio
    reads an input's from "additional_description", an output's from "description")."""
    def info() -> dict:
        return {**api_info(), key: text}
    return info


def publish(app: gr.Blocks, models: ModelCache) -> None:
    """Register the JSON endpoints and document, complete and guard every public one (see the module's docstring).
    Inside app's Blocks context, after every tab is built."""

    def decode(model: str, latent: list[float]) -> list[list[int]]:
        return sample.api_decode(models, model, latent)

    def edit_sample(model: str, seed: int, index: int, amounts: list[float], temperature: float = 1.0,
                    count: int = 32) -> list[list[int]]:
        return edit.api_edit(models, model, seed, index, amounts, temperature, count)

    def edit_attributes(model: str, seed: int, index: int, amounts: dict[str, float], lock: list[str] | None = None,
                        temperature: float = 1.0, count: int = 32) -> list[list[int]]:
        return edit.api_edit_attributes(models, model, seed, index, amounts, lock, temperature, count)

    def interpolate_seeds(model: str, seed_a: int, seed_b: int, frames: int = 10,
                          mode: str = "slerp") -> list[list[list[int]]]:
        return interpolate.api_interpolate(models, model, seed_a, seed_b, frames, mode)

    functions = {"decode": (decode, sample.api_decode), "edit": (edit_sample, edit.api_edit),
                 "edit_attributes": (edit_attributes, edit.api_edit_attributes),
                 "interpolate": (interpolate_seeds, interpolate.api_interpolate)}
    docs = {name: parse_doc(text) for name, text in BUTTONS.items()}
    signatures = {}
    for api_name, (fn, library) in functions.items():
        docs[api_name] = parse_doc(library.__doc__)
        fn.__doc__ = library.__doc__
        signatures[api_name] = inspect.signature(fn)
        gr.api(fn, api_name=api_name, api_description=docs[api_name].summary)

    endpoints = {}
    for block_fn in app.fns.values():
        if block_fn.api_visibility != "public" or block_fn.api_name is None:
            continue
        if block_fn.api_name not in docs:
            raise RuntimeError(f"/{block_fn.api_name} is public but explorer/ui/api.py does not document it")
        endpoints[block_fn._id] = document(block_fn, docs[block_fn.api_name], signatures.get(block_fn.api_name))
    if {e.api_name for e in endpoints.values()} != set(docs):
        raise RuntimeError(f"explorer/ui/api.py documents endpoints the app does not have: "
                           f"{sorted(set(docs) - {e.api_name for e in endpoints.values()})}")

    # Both overrides are instance attributes that shadow Blocks methods Gradio calls through `self`, for this app only
    validate_inputs = app.validate_inputs

    def complete_then_validate(block_fn, inputs):
        if block_fn._id in endpoints:
            endpoints[block_fn._id].complete(inputs)  # `inputs` is the list Gradio goes on to preprocess
        validate_inputs(block_fn, inputs)

    app.validate_inputs = complete_then_validate
    app._format_processing_error = unreadable_input


def document(block_fn, doc: Doc, signature: inspect.Signature | None) -> Endpoint:
    """Name, describe and label one public event's inputs and outputs from `doc`; -> its Endpoint. Parameters are
    documented in input order (a stale list would misname them, so it is refused); a return by the name the output
    shows, "*" for any other. `signature` is a gr.api function's (its defaults are the parameters'); a button's
    defaults are its components' starting values."""
    api_name, inputs = block_fn.api_name, list(block_fn.inputs)
    outputs = [block for block in block_fn.outputs if not block.skip_api]
    names = list(doc.parameters)
    if signature is not None and names != list(signature.parameters):
        raise RuntimeError(f"/{api_name}'s docstring documents {names}, its function takes {list(signature.parameters)}")
    if len(names) != len(inputs) or any(block.skip_api for block in inputs):
        raise RuntimeError(f"/{api_name} is documented with parameters {names} but its event has {len(inputs)} inputs")
    block_fn.input_parameter_names = names
    block_fn.api_description = doc.summary
    for block, name in zip(inputs, names):
        block.api_info_as_input = described(block.api_info_as_input, doc.parameters[name], "additional_description")
        if isinstance(block, Api):
            block.label = name
    returns = iter(doc.returns.items())
    for block in outputs:
        if isinstance(block, Api):  # a gr.api function's outputs, in order
            block.label, description = next(returns)
        else:
            if not block.label and isinstance(block, NAMED_BY_ELEM_ID) and block.elem_id:
                block.label = block.elem_id.split("-", 1)[-1]
            description = doc.returns.get(block.label) or doc.returns.get("*")
        if description:  # tests/test_api.py checks that every output has one
            block.api_info_as_output = described(block.api_info_as_output, description, "description")
    if signature is None and all(isinstance(block, PLAIN_INPUTS) for block in inputs):
        block_fn.preprocess = False  # the handler sees what the client sent (see the module's docstring)
    if signature is not None:
        defaults = tuple((p.default is not inspect.Parameter.empty, None if p.default is inspect.Parameter.empty else p.default)
                         for p in signature.parameters.values())
    else:
        defaults = tuple((block.value is not None, block.value) for block in inputs)
    return Endpoint(api_name, tuple(names), defaults)
