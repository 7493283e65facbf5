"""The baseline of the webhook benchmark: a Flask endpoint that only answers 200.

It reads the body, as any endpoint must, and does nothing else, so the ratio of our
`POST /webhook` to it shows what validation, signatures and Redis cost on top of Flask
and gunicorn themselves.
"""

from __future__ import annotations

from flask import Flask, request


def create_app() -> Flask:
    """A one-route app: `POST /webhook` reads the body and answers 200 with a small JSON."""
    app = Flask(__name__)

    @app.post("/webhook")
    def receive():
        request.get_data(cache=False)
        return {"ok": True}

    return app
