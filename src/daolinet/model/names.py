"""DNS names of endpoints: the checks an alias passes before the store keeps it.

An endpoint answers DNS questions of its tenant (decide/names.py) under its name and under
its *aliases*: extra names, such as a Docker container's own name and its network aliases
(the endpoint's name is generated for Docker containers, agent/docker_ipam.py).  An alias
is one DNS label (RFC 1123: 1..63 ASCII letters, digits and hyphens, not starting or ending
with a hyphen), kept lower-cased, since DNS names compare case-insensitively.

Decided: at most MAX_ALIASES per endpoint, duplicates dropped (the first spelling's place
kept); aliases are not unique, several endpoints of a tenant may share one (Docker network
aliases do, and DNS answers all of them); an alias may equal another endpoint's name (the
name wins in lookups).  Pure; errors are InvalidInput with one line for a human.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from daolinet.errors import InvalidInput

MAX_ALIASES = 16
MAX_LABEL = 63
# ASCII only, matched before lower-casing: str.lower() maps some non-ASCII letters to ASCII
# ones (KELVIN SIGN -> "k"), which must not turn a wrong label into a right one.
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def check_dns_label(text: object, what: str = "name") -> str:
    """One DNS label, lower-cased; InvalidInput naming `what` otherwise."""
    if not isinstance(text, str):
        raise InvalidInput(f"{what} {text!r} must be a string")
    if not _LABEL_RE.fullmatch(text):
        raise InvalidInput(f"{what} {text!r} is not a DNS label: 1 to {MAX_LABEL} letters, digits and "
                           "hyphens, not starting or ending with a hyphen")
    return text.lower()


def check_aliases(aliases: Iterable[object] | None, what: str = "endpoint") -> tuple[str, ...]:
    """Aliases of `what` as stored: DNS labels, lower-cased, each once, at most MAX_ALIASES."""
    if aliases is None:
        return ()
    if isinstance(aliases, str | bytes) or not isinstance(aliases, Iterable):
        raise InvalidInput(f"aliases of {what} must be a list of names, not {aliases!r}")
    out = tuple(dict.fromkeys(check_dns_label(a, f"alias of {what}") for a in aliases))
    if len(out) > MAX_ALIASES:
        raise InvalidInput(f"{what} has {len(out)} aliases: at most {MAX_ALIASES} are allowed")
    return out
