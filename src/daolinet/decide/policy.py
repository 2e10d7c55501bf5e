"""Who may talk to whom, and why.  One pure function; the policy issue grows
it (groups, pair rules, L4 rules) without changing its signature.

Today's rules (design.md "Policy"):
- tenants are isolated absolutely (a destination is only ever looked up in
  the source's tenant, so this function never sees two tenants);
- same network: allowed unless the network is isolated;
- different networks of one tenant: denied until a group or rule allows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from daolinet.model import Endpoint, Network


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


def decide(src: Endpoint, dst: Endpoint, src_net: Network, dst_net: Network) -> Verdict:
    if src.tenant != dst.tenant:
        return Verdict(False, "different tenants")
    if src_net.name == dst_net.name:
        if src_net.isolated:
            return Verdict(False, f"network {src_net.name} is isolated")
        return Verdict(True, f"same network {src_net.name}")
    return Verdict(False, f"networks {src_net.name} and {dst_net.name} share no group or rule")
