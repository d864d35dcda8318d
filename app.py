"""Start Latent Explorer: `python app.py [--host H] [--port P] [--device cpu|cuda|mps] [--share]`."""

from __future__ import annotations

import argparse

from explorer.ui import FRONTEND_CSS, FRONTEND_HEAD, build_app
from explorer.ui.models import ModelCache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", default=None, help="default: cuda if available, else mps, else cpu")
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio link")
    args = parser.parse_args()
    app = build_app(ModelCache(args.device))
    app.queue(default_concurrency_limit=4).launch(server_name=args.host, server_port=args.port, share=args.share,
                                                    head=FRONTEND_HEAD, css=FRONTEND_CSS)


if __name__ == "__main__":
    main()
