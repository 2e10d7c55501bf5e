"""Objects as JSON: what the change log (both backends) and etcd's values hold, and what a
host's view stream (controller/host_view.py -> agent/resolver_view.py) carries."""

from __future__ import annotations

import dataclasses
from typing import Any

from daolinet.errors import InvalidInput
from daolinet.model.objects import (
    ControllerRecord,
    Endpoint,
    Group,
    Host,
    Network,
    Portmap,
    Rule,
    Tenant,
    Token,
    without_unset,
)
from daolinet.model.view import Change, Kind, Obj

_KINDS: dict[Kind, type[Tenant] | type[Network] | type[Host] | type[Endpoint] | type[Group] | type[Rule]
             | type[Token] | type[Portmap] | type[ControllerRecord]] = {
    "tenant": Tenant, "network": Network, "host": Host, "endpoint": Endpoint,
    "group": Group, "rule": Rule, "token": Token, "portmap": Portmap, "controller": ControllerRecord,
}


def kind_of(obj: Obj) -> Kind:
    for kind, cls in _KINDS.items():
        if isinstance(obj, cls):
            return kind
    raise TypeError(f"not a model object: {obj!r}")


def obj_to_json(obj: Obj) -> dict[str, Any]:
    """Every field of `obj`, for the change log (unlike `Token.to_json`, this keeps the hash)."""
    data = without_unset(obj, dataclasses.asdict(obj))  # IPv4-only objects as before issue 18
    if isinstance(obj, Group):
        data["members"] = list(obj.members)
    if isinstance(obj, Endpoint) and obj.aliases:
        data["aliases"] = list(obj.aliases)
    return data


def obj_from_json(kind: str, data: dict[str, Any]) -> Obj:
    try:
        cls = _KINDS[kind]  # type: ignore[index]
    except KeyError:
        raise InvalidInput(f"unknown object kind {kind!r} in the change log") from None
    if cls is Group:
        data = {**data, "members": tuple(data.get("members", ()))}
    return cls(**data)



def change_to_json(change: Change) -> dict[str, Any]:
    """{"rev", "kind", "obj", "deleted"}: one Change as a host's view stream sends it."""
    return {"rev": change.rev, "kind": kind_of(change.obj), "obj": obj_to_json(change.obj),
            "deleted": change.deleted}


def change_from_json(data: Any) -> Change:
    """The Change `change_to_json` made; InvalidInput (never a TypeError) for anything else."""
    if not isinstance(data, dict) or not isinstance(data.get("obj"), dict) \
            or not isinstance(data.get("rev"), int) or not isinstance(data.get("deleted", False), bool):
        raise InvalidInput(f"malformed change: {str(data)[:200]}")
    try:
        obj = obj_from_json(str(data.get("kind")), data["obj"])
    except TypeError as e:
        raise InvalidInput(f"malformed {data.get('kind')} in a change: {e}") from None
    return Change(rev=data["rev"], obj=obj, deleted=data.get("deleted", False))
