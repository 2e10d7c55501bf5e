"""What the controller's REST API and the agent's local API share: the mapping
from daolinet's exceptions to HTTP statuses, the one-line message a refused
request body gets, and the strict base every request body derives from.

It lives outside both daemons so the agent can serve its API without importing
the controller (tests/unit/test_layering.py keeps it so)."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict

from daolinet.errors import Conflict, DaoliError, Forbidden, InvalidInput, NotFound, Unauthorized

STATUS: dict[type[DaoliError], int] = {
    InvalidInput: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409,
}


def status_of(exc: DaoliError) -> int:
    """The HTTP status of a daolinet error: its nearest class in STATUS, else 503
    (a store or peer that cannot answer now)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 503


def validation_message(exc: RequestValidationError) -> str:
    """One line naming every refused field, e.g. "port: Input should be a valid integer"."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        if err.get("type") == "json_invalid":
            return "malformed JSON body"
        parts.append(f"{where or 'body'}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request"


class Strict(BaseModel):
    """A request body that refuses unknown keys and wrong types by name."""

    model_config = ConfigDict(extra="forbid", strict=True)  # no "5" -> 5, true -> 1, "yes" -> True
