"""Groups, pair rules (connect/disconnect), L4 rules and trace.

A call that changes the policy answers once the change has taken effect on every
switch: the routes it no longer allows and the drop flows it lifts are deleted,
confirmed by barrier replies (Controller.confirmed)."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import APIRouter, Request

from daolinet.controller.api.auth import Auth
from daolinet.controller.api.models import GroupIn, L4RuleIn, MemberIn, PairIn, TraceIn
from daolinet.controller.trace import trace_on_hosts
from daolinet.errors import NotFound
from daolinet.model.objects import Rule
from daolinet.store.base import Store

router = APIRouter()


def _store(request: Request) -> Store:
    return request.app.state.ctrl.store  # type: ignore[no-any-return]


async def _in_effect(request: Request) -> None:
    """Wait until the policy change just committed is confirmed by the switches."""
    await request.app.state.ctrl.confirmed()


@router.get("/groups", tags=["groups"])
async def list_groups(request: Request, caller: Auth, tenant: str | None = None) -> list[dict[str, Any]]:
    return [g.to_json() for g in await _store(request).list_groups(caller.tenant_filter(tenant))]


@router.post("/groups", status_code=201, tags=["groups"])
async def create_group(request: Request, caller: Auth, body: GroupIn) -> dict[str, Any]:
    caller.see(body.tenant, f"tenant {body.tenant} not found")
    changed = await _store(request).create_group(body.tenant, body.name, body.members)
    await _in_effect(request)
    return changed.to_json()


@router.get("/groups/{tenant}/{name}", tags=["groups"])
async def get_group(request: Request, caller: Auth, tenant: str, name: str) -> dict[str, Any]:
    caller.see(tenant, f"group {name} of tenant {tenant} not found")
    return (await _store(request).get_group(tenant, name)).to_json()


@router.delete("/groups/{tenant}/{name}", tags=["groups"])
async def delete_group(request: Request, caller: Auth, tenant: str, name: str) -> dict[str, Any]:
    caller.see(tenant, f"group {name} of tenant {tenant} not found")
    changed = await _store(request).delete_group(tenant, name)
    await _in_effect(request)
    return changed.to_json()


@router.post("/groups/{tenant}/{name}/members", tags=["groups"])
async def add_member(request: Request, caller: Auth, tenant: str, name: str,
                     body: MemberIn) -> dict[str, Any]:
    caller.see(tenant, f"group {name} of tenant {tenant} not found")
    changed = await _store(request).add_group_member(tenant, name, body.member)
    await _in_effect(request)
    return changed.to_json()


@router.delete("/groups/{tenant}/{name}/members", tags=["groups"])
async def remove_member(request: Request, caller: Auth, tenant: str, name: str,
                        member: str) -> dict[str, Any]:
    caller.see(tenant, f"group {name} of tenant {tenant} not found")
    changed = await _store(request).remove_group_member(tenant, name, member)
    await _in_effect(request)
    return changed.to_json()


@router.post("/policy/connect", tags=["policy"])
async def connect(request: Request, caller: Auth, body: PairIn) -> dict[str, Any]:
    caller.see(body.tenant, f"tenant {body.tenant} not found")
    changed = await _store(request).set_pair_rule(body.tenant, body.a, body.b, "connect")
    await _in_effect(request)
    return changed.to_json()


@router.post("/policy/disconnect", tags=["policy"])
async def disconnect(request: Request, caller: Auth, body: PairIn) -> dict[str, Any]:
    caller.see(body.tenant, f"tenant {body.tenant} not found")
    changed = await _store(request).set_pair_rule(body.tenant, body.a, body.b, "disconnect")
    await _in_effect(request)
    return changed.to_json()


@router.get("/policy", tags=["policy"])
async def show_policy(request: Request, caller: Auth, tenant: str | None = None, a: str | None = None,
                      b: str | None = None) -> list[dict[str, Any]]:
    rules = await _store(request).list_rules(caller.tenant_filter(tenant), kind="pair")
    wanted = {name for name in (a, b) if name}  # `a` and `b` are the API's names for the pair
    return [rule.to_json() for rule in rules if wanted <= {rule.a, rule.b}]


@router.delete("/policy", tags=["policy"])
async def clear_policy(request: Request, caller: Auth, tenant: str = "default", a: str | None = None,
                       b: str | None = None) -> list[dict[str, Any]]:
    caller.see(tenant, f"tenant {tenant} not found")
    changed = [r.to_json() for r in await _store(request).clear_pair_rules(tenant, a, b)]
    await _in_effect(request)
    return changed


def in_order(rules: list[Rule]) -> list[dict[str, Any]]:
    """L4 rules in evaluation order (Rule.order_key) within each tenant, each with its
    place in that order ("order", from 1): the first that matches a packet decides."""
    out: list[dict[str, Any]] = []
    for _, of_tenant in itertools.groupby(sorted(rules, key=lambda r: (r.tenant, r.order_key())),
                                          key=lambda r: r.tenant):
        out += [{**r.to_json(), "order": n} for n, r in enumerate(of_tenant, start=1)]
    return out


def rule_ref(ref: str) -> int | str:
    """A rule's id (digits) or an l4 rule's name (never all digits)."""
    if ref.isascii() and ref.isdigit() and len(ref) <= 18:  # below 2**62: a store integer
        return int(ref)
    return ref


@router.get("/rules", tags=["rules"])
async def list_rules(request: Request, caller: Auth, tenant: str | None = None) -> list[dict[str, Any]]:
    """L4 rules in evaluation order: first by tenant, then as `order` says (higher priority
    first; at equal priority deny before allow, then the older rule)."""
    return in_order(await _store(request).list_rules(caller.tenant_filter(tenant), kind="l4"))


@router.post("/rules", status_code=201, tags=["rules"])
async def create_rule(request: Request, caller: Auth, body: L4RuleIn) -> dict[str, Any]:
    caller.see(body.tenant, f"tenant {body.tenant} not found")
    r = await _store(request).create_l4_rule(
        body.tenant, body.from_group, body.to_group, body.protocol, body.ports, icmp_type=body.icmp_type,
        action=body.action, priority=body.priority, name=body.name)
    await _in_effect(request)
    return r.to_json()


@router.get("/rules/{tenant}/{ref:path}", tags=["rules"])  # a name with "/" is not found, by name
async def get_rule(request: Request, caller: Auth, tenant: str, ref: str) -> dict[str, Any]:
    """A rule by id, or an l4 rule by name."""
    caller.see(tenant, f"rule {ref} of tenant {tenant} not found")
    return (await _store(request).get_rule(tenant, rule_ref(ref))).to_json()


@router.delete("/rules/{tenant}/{ref:path}", tags=["rules"])
async def delete_rule(request: Request, caller: Auth, tenant: str, ref: str) -> dict[str, Any]:
    """Delete a rule by id, or an l4 rule by name; answers once the routes it no longer
    allows are revoked on every switch."""
    caller.see(tenant, f"rule {ref} of tenant {tenant} not found")
    changed = await _store(request).delete_rule(tenant, rule_ref(ref))
    await _in_effect(request)
    return changed.to_json()


@router.post("/trace", tags=["policy"])
async def trace_pair(request: Request, caller: Auth, body: TraceIn) -> dict[str, Any]:
    """Why src may or may not reach dst, the flows a route would have, the live route, and
    what each of the two hosts' bridges does with src's first packet (asked of their agents)."""
    caller.see(body.tenant, f"tenant {body.tenant} not found")
    view = request.app.state.ctrl.view
    src = next((e for e in view.endpoints.values() if e.tenant == body.tenant and e.name == body.src), None)
    dst = next((e for e in view.endpoints.values() if e.tenant == body.tenant and e.name == body.dst), None)
    if src is None or dst is None:
        raise NotFound(f"no container {body.src if src is None else body.dst} in tenant {body.tenant}")
    family = 6 if body.ipv6 else 4
    return await trace_on_hosts(request.app.state.ctrl, src, dst, body.protocol, body.port, family)
