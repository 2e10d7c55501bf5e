"""Every API error is a JSON body {"error": message}: the handlers that enforce
it (the mapping from our exceptions to statuses is daolinet.api_common's)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from daolinet.api_common import status_of, validation_message
from daolinet.errors import DaoliError

log = logging.getLogger(__name__)


def error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(DaoliError)
    async def daoli_error(_: Request, exc: DaoliError) -> JSONResponse:
        return error(status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = error(exc.status_code, str(exc.detail or "error"))
        response.headers.update(exc.headers or {})  # e.g. Allow of a 405
        return response

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return error(500, f"internal error: {type(exc).__name__}")
