"""The web console at `/console`: server-rendered pages over the same data as `/api/v1`.

Off unless `WASTATUS_CONSOLE_USERS` or `WASTATUS_CONSOLE_TOKEN` is set (`webhook.create_app`
registers it only then). Everything it serves comes from this package: no asset is fetched at
run time.
"""

from __future__ import annotations

from flask import Flask

from workers.settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """Sessions and CSRF (`auth`), then the pages when there are users to log in (with the
    API token alone only the API answers)."""
    from webhook.console import auth, pages

    auth.init_app(app, settings)
    if settings.console_users:
        app.register_blueprint(pages.bp)
