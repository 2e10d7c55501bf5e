"""Which OpenFlow connections may speak for a datapath id: a pure decision
(docs/security.md), taken by the controller (controller.py) when a switch's
handshake names its dpid, and again when the store binds a dpid to a host.

A dpid belongs to the host whose agent registered it (its Host record).  A TLS
peer must hold a host certificate; it may speak for a bound dpid only if the
certificate names that host, and for a dpid not bound yet only if no live
session for it shows another host's certificate (first come keeps it until a
Host record names the owner).  The same host again is a reconnect.  Plaintext
peers (only behind --insecure) carry no identity and are accepted as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from daolinet.security.identity import Identity

# The metric's reason label (low cardinality) for each way a connection is refused.
HANDSHAKE = "handshake"  # the TLS handshake failed: no, expired or foreign certificate
NO_IDENTITY = "no_identity"  # a certificate of the CA that names no daolinet role
WRONG_ROLE = "wrong_role"  # a user's or a controller's certificate
WRONG_HOST = "wrong_host"  # another host's certificate for a bound dpid
DPID_TAKEN = "dpid_taken"  # an unbound dpid live with another host's certificate
REASONS = (HANDSHAKE, NO_IDENTITY, WRONG_ROLE, WRONG_HOST, DPID_TAKEN)


@dataclass(frozen=True)
class Refusal:
    reason: str  # one of REASONS
    detail: str  # for the log line, after "refused OpenFlow connection from PEER: "


def admit(peer: Identity | None, dpid: int, bound: str | None, live: Identity | None,
          *, tls: bool = True) -> Refusal | None:
    """None to accept a session for `dpid` whose peer showed `peer` (None: no daolinet
    identity), when the store binds `dpid` to host `bound` (None: to no host yet) and
    the session live for it showed `live`; else why not."""
    if not tls:
        return None
    where = f"(dpid {dpid:#x})"
    if peer is None:
        return Refusal(NO_IDENTITY, f"its certificate names no daolinet role and name {where}")
    if peer.role != "host":
        return Refusal(WRONG_ROLE, f"certificate of {peer.name} ({peer.role}) is not a host's {where}")
    if bound is not None and peer.name != bound:
        return Refusal(WRONG_HOST, f"certificate of {peer.name} is not valid for host {bound} {where}")
    if bound is None and live is not None and live != peer:
        return Refusal(DPID_TAKEN, f"certificate of {peer.name}: the dpid is held by {live}, "
                                   f"and no host has registered it yet {where}")
    return None


def handshake_failed(error: BaseException) -> Refusal:
    """A TLS handshake that did not complete, in words."""
    why = getattr(error, "verify_message", None) or getattr(error, "reason", None) or str(error)
    if isinstance(error, TimeoutError):
        why = "timed out"
    words = str(why).replace("_", " ").lower() or type(error).__name__
    return Refusal(HANDSHAKE, f"TLS handshake failed: {words}")
