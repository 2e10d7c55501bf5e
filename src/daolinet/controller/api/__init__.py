"""The REST API (FastAPI).  Every route needs a credential (auth.py: a bearer
token, or with TLS a client certificate) except /healthz, /readyz and the
documents; every error is a JSON body {"error": message} (errors.py); input
models forbid unknown keys and wrong types (models.py).  Handlers call the
store; the controller learns of each change from the store's feed, as it would
from another controller's write.  OpenAPI at /openapi.json, docs at /docs."""

from __future__ import annotations

from fastapi import FastAPI

from daolinet import __version__
from daolinet.controller.api import (
    errors,
    health_routes,
    host_view_routes,
    infra_routes,
    log_routes,
    model_routes,
    ops_routes,
    policy_routes,
    portmap_routes,
    ui_routes,
)
from daolinet.controller.controller import Controller

__all__ = ["create_app"]


def create_app(ctrl: Controller, *, tls: bool = False) -> FastAPI:
    """The API of `ctrl`.  `tls`: it is served over TLS, so /internal needs a controller
    certificate (with --insecure: the admin token)."""
    app = FastAPI(title="daolinet", version=__version__,
                  description="Hot-plug routes for containers: the controller's API. "
                              "Send 'Authorization: Bearer TOKEN', or over TLS show a client "
                              "certificate of the installation's CA.")
    app.state.ctrl = ctrl
    app.state.tls = tls
    errors.install(app)
    for module in (health_routes, model_routes, policy_routes, log_routes, portmap_routes, ops_routes,
                   infra_routes, ui_routes, host_view_routes):
        app.include_router(module.router)
    ui_routes.attach(app, ctrl)  # the live map at /ui
    host_view_routes.attach(app, ctrl)  # each agent's replica, for its resolver
    return app
