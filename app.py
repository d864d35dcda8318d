"""Start Latent Explorer: `python app.py [--host H] [--port P] [--device cpu|cuda|mps] [--share] [--auth user:pw]`
(`python app.py --help` lists every flag; explorer/ui/server.py says what each limit is for)."""

from explorer.ui.server import serve

if __name__ == "__main__":
    serve()
