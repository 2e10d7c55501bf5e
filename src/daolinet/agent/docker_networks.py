"""Which daolinet network each of this host's Docker networks is.

Docker names neither the network (CreateNetwork carries its id only) nor,
in IPAM calls, which network a pool serves.  The agent therefore keeps, per
host, Docker network id -> (tenant, daolinet network, subnet, subnet6), and
allows one Docker network per subnet, so that a pool (a subnet of either
family) names its network.

A network created with `docker network create` without `-o network=NAME`
is named after the Docker network, which Docker only reveals once the call
returns: its binding is *pending* (a task that learns the name and creates
or adopts the daolinet network) and every use awaits it.  The bindings are
also kept in a file (`path`), read at start: after a reboot dockerd restores
its containers, asking for their addresses, before its API answers the sync
that would otherwise rebuild them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import asdict, dataclass

from daolinet.errors import Conflict, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Binding:
    nid: str  # Docker's network id
    tenant: str
    name: str  # the daolinet network
    subnet: str
    subnet6: str = ""  # a dual-stack (--ipv6) network's IPv6 subnet

    @property
    def subnets(self) -> tuple[str, ...]:
        return (self.subnet, self.subnet6) if self.subnet6 else (self.subnet,)

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.name)


@dataclass(frozen=True)
class _Pending:
    tenant: str
    subnets: tuple[str, ...]
    task: asyncio.Task[Binding]


class Registry:
    def __init__(self, path: str | None = None) -> None:
        self._bound: dict[str, Binding] = {}
        self._pending: dict[str, _Pending] = {}
        self._failed: dict[str, tuple[tuple[str, ...], str]] = {}  # nid -> (subnets, why)
        self.path = path
        if path:
            self._bound = _load(path)

    def _save(self) -> None:
        if not self.path:
            return
        tmp = f"{self.path}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with open(tmp, "w") as f:
                json.dump([asdict(binding) for binding in self._bound.values()], f)
            os.replace(tmp, self.path)
        except OSError as e:  # the memory copy still serves; only a restart would miss it
            log.warning("cannot keep Docker network bindings in %s: %s", self.path, e.strerror)

    # -- changes -----------------------------------------------------------------

    def check_free(self, nid: str, *subnets: str) -> None:
        """Refuse a second Docker network on a subnet this host already serves."""
        for subnet in filter(None, subnets):
            other = self.nid_for_subnet(subnet)
            if other is not None and other != nid:
                raise Conflict(f"subnet {subnet} is already Docker network {other[:12]} on this host: "
                               "a host serves one daolinet network per subnet")

    def bind(self, binding: Binding) -> None:
        self._pending.pop(binding.nid, None)
        self._failed.pop(binding.nid, None)
        if self._bound.get(binding.nid) != binding:
            self._bound[binding.nid] = binding
            self._save()

    def pend(self, nid: str, tenant: str, subnet: str, task: asyncio.Task[Binding],
             subnet6: str = "") -> None:
        self._pending[nid] = _Pending(tenant, tuple(filter(None, (subnet, subnet6))), task)

    def fail(self, nid: str, subnet: str, why: str, subnet6: str = "") -> None:
        self._pending.pop(nid, None)
        self._failed[nid] = (tuple(filter(None, (subnet, subnet6))), why)

    def forget(self, nid: str) -> Binding | None:
        pending = self._pending.pop(nid, None)
        if pending is not None:
            pending.task.cancel()
        self._failed.pop(nid, None)
        gone = self._bound.pop(nid, None)
        if gone is not None:
            self._save()
        return gone

    # -- questions -----------------------------------------------------------------

    def known(self, nid: str) -> bool:
        return nid in self._bound or nid in self._pending or nid in self._failed

    def pending(self, nid: str) -> bool:
        return nid in self._pending

    def bindings(self) -> list[Binding]:
        return list(self._bound.values())

    def bound(self, nid: str) -> Binding | None:
        return self._bound.get(nid)

    def nid_for_subnet(self, subnet: str) -> str | None:
        for nid, binding in self._bound.items():
            if subnet in binding.subnets:
                return nid
        for nid, pending in self._pending.items():
            if subnet in pending.subnets:
                return nid
        for nid, (failed_subnets, _) in self._failed.items():
            if subnet in failed_subnets:
                return nid
        return None

    def nid_for(self, tenant: str, name: str) -> str | None:
        for nid, binding in self._bound.items():
            if binding.key == (tenant, name):
                return nid
        return None

    async def get(self, nid: str) -> Binding:
        """The binding of Docker network `nid`, once known."""
        pending = self._pending.get(nid)
        if pending is not None:
            return await asyncio.shield(pending.task)
        if nid in self._failed:
            raise Conflict(f"Docker network {nid[:12]} has no daolinet network: {self._failed[nid][1]}")
        found = self._bound.get(nid)
        if found is None:
            raise NotFound(f"Docker network {nid[:12]} is not a daolinet network this agent knows")
        return found

    async def for_subnet(self, subnet: str) -> Binding:
        nid = self.nid_for_subnet(subnet)
        if nid is None:
            raise NotFound(f"no daolinet network on this host has subnet {subnet}: create it with "
                           "docker network create -d daolinet --ipam-driver daolinet --subnet ...")
        return await self.get(nid)


def _load(path: str) -> dict[str, Binding]:
    """The bindings a previous run kept; {} when there is no (readable) file."""
    try:
        with open(path) as f:
            return {binding.nid: binding for binding in (Binding(**fields) for fields in json.load(f))}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError) as e:
        log.warning("ignoring Docker network bindings in %s: %s", path, e)
        return {}
