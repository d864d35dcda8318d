"""The Gradio app: one module per tab, each with plain handler functions and a build() that wires them.
Models live in one ModelCache shared by every user; per-user gr.State holds picked latents only."""

from __future__ import annotations

import gradio as gr

from . import api, compare, denoise, edit, interpolate, latent_map, playground, sample
from ..domains import domain_of
from ..models import FAMILIES
from .common import LONG_WORK, PLAYGROUND
from .models import ModelCache

TITLE = "Latent Explorer"
# Passed to launch(head=...). Gradio 6's front end snapshots every component's properties several times per
# event (Svelte's $state.snapshot), calling structuredClone once per primitive: ~12,000 calls per slider move.
# For a primitive, structuredClone returns the value itself (HTML spec, StructuredSerializeInternal step 2), so
# answering those calls in JavaScript gives identical results without the native round trip; everything else
# still goes to the browser's own structuredClone.
FRONTEND_HEAD = """<script>
(() => {
  const native = window.structuredClone;
  window.structuredClone = function structuredClone(value, options) {
    const kind = typeof value;
    if (value === null || kind === "undefined" || kind === "string" || kind === "number" || kind === "boolean" || kind === "bigint") return value;
    return native.call(this, value, options);
  };
})();
</script>"""
# Passed to launch(css=...): the Edit tab's readout, one HTML block drawn on the server (see edit.readout_html).
FRONTEND_CSS = """
#edit-readout .digits { margin-bottom: 0.6em; }
#edit-readout .caption { font-size: var(--text-sm); color: var(--body-text-color-subdued); margin-bottom: 0.2em; }
#edit-readout .digit-row { display: flex; align-items: center; gap: 0.6em; line-height: 1.5; }
#edit-readout .digit { width: 1em; font-weight: 600; }
#edit-readout .track { width: 12em; height: 0.55em; border-radius: 3px; background: var(--border-color-primary); }
#edit-readout .bar { display: block; height: 100%; border-radius: 3px; background: var(--color-accent); }
#edit-readout table { border-collapse: collapse; width: 100%; font-size: var(--text-sm); }
#edit-readout th, #edit-readout td { padding: 3px 8px; text-align: left; border-bottom: 1px solid var(--border-color-primary); }
#edit-readout p { margin: 0.5em 0 0; }
/* Stop buttons outlined, filled only under the pointer: a page at rest showed a row of red buttons that read as
   errors to a first-time user (teacher review) */
.gradio-container button.stop { background: var(--block-background-fill); color: var(--button-cancel-background-fill);
  border: 1px solid var(--button-cancel-background-fill); }
.gradio-container button.stop:hover { background: var(--button-cancel-background-fill); color: var(--button-cancel-text-color); }
/* a preset sets up one lesson in a click: accent-coloured, so it does not look like a disabled grey button */
.gradio-container button.preset { background: var(--color-accent-soft); color: var(--color-accent);
  border: 1px solid var(--color-accent); font-weight: 600; }
.gradio-container button.preset::before { content: "\\25B6\\00A0"; }
"""
FAMILY_NAMES = {"vae": "VAE", "autoencoder": "autoencoder", "cvae": "conditional VAE", "gan": "GAN",
                "flow": "normalizing-flow", "diffusion": "diffusion", "pixelcnn": "PixelCNN", "rbm": "RBM"}


def header(models: ModelCache) -> str:
    """The line under the title, naming the families of the checkpoints actually served."""
    served = [FAMILY_NAMES.get(f, f) for f in FAMILIES if f in set(models.families.values())]
    families = " and ".join([", ".join(served[:-1]), served[-1]] if len(served) > 1 else served)
    own = [n for n in models.names if models.domain(n) is None]
    worlds = dict.fromkeys(domain_of(d).about for d in map(models.domain, models.names) if d is not None)
    also = f" Also served: your own {', '.join(f'**{n}**' for n in own)}." if own else ""
    return (f"Sample, edit, interpolate, map and watch {families} models of {' and of '.join(worlds) or 'images'}; "
            f"and train small ones live on points in the plane.{also}")


SHOW_TAB = "() => document.querySelector('#tab-{tab}-button')?.click()"
# (the tab's content may render a moment after its select event: look again for up to a few seconds)
SELECT_BRUSH = """() => { let tries = 0; const choose = () => {
  const brush = document.querySelector('#edit-sketch button[aria-label="Brush"]');
  if (brush) { if (!brush.classList.contains('highlight')) brush.click(); }
  else if (tries++ < 50) setTimeout(choose, 100); }; choose(); }"""


def build_app(models: ModelCache) -> gr.Blocks:
    """The whole app on `models` (the cache of files it returns is swept by server.CacheSweeper)."""
    from .server import install_gradio_fixes

    install_gradio_fixes()
    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"# {TITLE}\n{header(models)}")
        picked, end_a, end_b = gr.State(None), gr.State(None), gr.State(None)
        with gr.Tabs():
            with gr.Tab("Sample", id="sample", elem_id="tab-sample"):
                sample_parts = sample.build(models, picked)
            with gr.Tab("Edit", id="edit", elem_id="tab-edit") as edit_tab:
                edit_parts = edit.build(models, picked)
            with gr.Tab("Interpolate", id="interpolate", elem_id="tab-interpolate"):
                interp_parts = interpolate.build(models, end_a, end_b)
            with gr.Tab("Denoise", id="denoise", elem_id="tab-denoise"):
                denoise_parts = denoise.build(models)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare"):
                compare.build(models)
            with gr.Tab("Latent map", id="latent-map", elem_id="tab-latent-map") as map_tab:
                map_parts = latent_map.build(models)
            with gr.Tab("Playground", id="playground", elem_id="tab-playground") as playground_tab:
                playground_parts = playground.build()

        fn, inputs, outputs = edit_parts["open"]
        # The tab switch runs in the browser: a gr.Tabs output would make Gradio's front end snapshot every
        # component inside the tabs on every later event (its loading-status pass walks an output's children),
        # which tripled the time from a slider move to the new image.
        sample_parts["to_edit"].click(fn, inputs, outputs, api_visibility="private").success(
            None, None, None, js=SHOW_TAB.format(tab="edit"), api_visibility="private")
        refresh, r_in, r_out = interp_parts["refresh"]
        for button, state in ((sample_parts["to_a"], end_a), (sample_parts["to_b"], end_b)):
            button.click(lambda p: p, picked, state, api_visibility="private").then(refresh, r_in, r_out, api_visibility="private")
        make_end, end_inputs = edit_parts["edited_pick"]
        for button, state in ((edit_parts["to_a"], end_a), (edit_parts["to_b"], end_b)):
            button.click(make_end, end_inputs, state, api_visibility="private").then(refresh, r_in, r_out, api_visibility="private")
        fn, inputs, outputs = sample_parts["load"]  # the first grid, queued (the page itself is not held up by it);
        app.load(fn, inputs, outputs, api_visibility="private")  # only a model that draws in one pass is drawn unasked
        fn, inputs, outputs = denoise_parts["load"]
        app.load(fn, inputs, outputs, api_visibility="private")
        fn, inputs, outputs = edit_parts["load"]  # the Edit tab holds a sample before anything is picked
        app.load(fn, inputs, outputs, api_visibility="private")
        # Gradio's sketchpad opens with no tool chosen ("select the draw tool to start"); the brush is what it is for
        edit_tab.select(None, None, None, js=SELECT_BRUSH, api_visibility="private")
        for fn, inputs, outputs in map_parts["load"]:  # drawn when first opened: encoding 2,000 digits is not free
            map_tab.select(fn, inputs, outputs, api_visibility="private", **LONG_WORK)
        fn, inputs, outputs = playground_parts["load"]  # a run of one's own only for those who open the tab
        playground_tab.select(fn, inputs, outputs, api_visibility="private", **PLAYGROUND)

        # the JSON endpoints, and names, descriptions, defaults and checks for every public endpoint (see api.py)
        api.publish(app, models)
    return app
