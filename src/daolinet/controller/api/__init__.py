"""The REST API (FastAPI).  Every route needs a token (auth.py); every error
is a JSON body {"error": message} (errors.py); input models forbid unknown
keys and wrong types (models.py).  Handlers call the store; the controller
learns of each change from the store's feed, as it would from another
controller's write.  OpenAPI at /openapi.json, docs at /docs."""

from __future__ import annotations

from fastapi import FastAPI

from daolinet import __version__
from daolinet.controller.api import (
    errors,
    infra_routes,
    model_routes,
    ops_routes,
    policy_routes,
    portmap_routes,
)
from daolinet.controller.api.errors import STATUS, status_of, validation_message
from daolinet.controller.app import Controller

__all__ = ["STATUS", "create_app", "status_of", "validation_message"]


def create_app(ctrl: Controller) -> FastAPI:
    app = FastAPI(title="daolinet", version=__version__,
                  description="Hot-plug routes for containers: the controller's API. "
                              "Send 'Authorization: Bearer TOKEN'.")
    app.state.ctrl = ctrl
    errors.install(app)
    for module in (model_routes, policy_routes, portmap_routes, ops_routes, infra_routes):
        app.include_router(module.router)
    return app
