"""The one exception tree of daolinet.

Every error a user can cause or meet derives from DaoliError; the CLI prints
its message on one line and the REST API turns it into a JSON body.  Foreign
exceptions (OSError, netlink errors, ...) are translated where they enter.
"""


class DaoliError(Exception):
    """Root of every daolinet error.  The message is meant for a human."""


class InvalidInput(DaoliError):
    """The request itself is malformed or out of range (HTTP 400/422)."""


class BadConfig(InvalidInput):
    """A daemon's settings (file, environment, flags) are wrong: refused at start-up,
    exit status 2 like any command line that cannot be used."""


class NotFound(DaoliError):
    """A named object does not exist (HTTP 404)."""


class Conflict(DaoliError):
    """The request collides with existing state (HTTP 409)."""


class SystemFailure(DaoliError):
    """A system part (OVS, netlink, a daemon) failed underneath us."""


class Unauthorized(DaoliError):
    """No token, or a token nobody issued (HTTP 401)."""


class Forbidden(DaoliError):
    """A valid token that may not do this (HTTP 403)."""
