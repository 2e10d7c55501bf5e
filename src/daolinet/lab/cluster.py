"""The lab as a whole: bring it up, build its fabric and hosts, run commands, tear
it down.  Containers (containers.py), agents (agents.py), controllers
(controllers.py), dockerds (dockerds.py) and containerds (containerds.py) are mixins of `Lab`.

Order of work in `up` (each step journalled in state.py before it happens):
fabric namespace(s) with a Linux bridge per rack, a router namespace joining
the racks when there are several, then every host in parallel: namespace,
uplink veth into its rack's fabric, private OVS, bridge, underlay address.
Every underlay link carries the lab's MTU (`mtu`): agents give it to containers.
A failure anywhere tears down what was made and re-raises.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from daolinet.agent import bootstrap
from daolinet.errors import Conflict, InvalidInput, NotFound
from daolinet.lab import containerd, credentials, docker, ha, plan, state
from daolinet.lab.agents import Agents
from daolinet.lab.containerds import Containerds
from daolinet.lab.containers import HOST_NAME_RE, Containers, LabContainer
from daolinet.lab.controllers import Controllers
from daolinet.lab.dockerds import Dockerds
from daolinet.lab.ovs import PrivateOvs
from daolinet.store.liveness import DEFAULT_HOST_TTL, MAX_HOST_TTL
from daolinet.system import links, links6, procs
from daolinet.system.ovsdb import BridgeConfig, Ovsdb

__all__ = ["Lab", "LabContainer", "LabHost", "down", "lab_exists", "list_labs"]


@dataclass(frozen=True)
class LabHost:
    plan: plan.HostPlan

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def netns(self) -> str:
        return self.plan.netns

    @property
    def ovs(self) -> PrivateOvs:
        return PrivateOvs(rundir=self.plan.rundir(), netns=self.plan.netns)

    @property
    def underlay_ip(self) -> str:
        return str(self.plan.underlay_ip)

    def ofctl(self, *args: str) -> str:
        return self.ovs.ofctl(plan.BRIDGE, *args)

    def ovsdb(self) -> Ovsdb:
        return Ovsdb(self.ovs.db_endpoint)


class Lab(Containers, Agents, Controllers, Dockerds, Containerds):
    """A handle on an existing lab (`Lab.open`) or a new one (`Lab.up`)."""

    def __init__(self, st: state.LabState) -> None:
        self._state = st
        self._lock = threading.Lock()
        self.name = st.name
        self.hosts = [LabHost(p) for p in plan.plan_hosts(st.name, st.hosts, st.racks)]

    # -- lifecycle -------------------------------------------------------

    @classmethod
    def up(cls, name: str, hosts: int, racks: int = 1, *, controller: bool = True,
           idle_timeout: int = 30, controllers: int = 1, store: str = "sqlite",
           host_ttl: int = DEFAULT_HOST_TTL, insecure: bool = False, mtu: int = plan.DEFAULT_MTU,
           log_format: str = "text", ipv6: bool = True) -> Lab:
        """Build the lab; with `controller`, also start daolinet on it (`controllers`
        controllers, on an etcd cluster of the lab's with `store="etcd"`, and an agent
        per host, heartbeating every host_ttl/3 s) and wait until every bridge is synced.
        TLS and certificates everywhere (a CA under the lab's run dir) unless `insecure`.
        `mtu`: of every underlay link (uplinks, fabric bridges and ports, router, control).
        `ipv6`: an IPv6 underlay beside the IPv4 one (lab/plan.py), hosts with IPv6 PIP pools."""
        plans = plan.plan_hosts(name, hosts, racks)  # validates everything first
        plan.check_mtu(mtu)
        ha.check(controllers, store)
        if not 1 <= idle_timeout <= 65535:
            raise InvalidInput(f"idle timeout must be 1..65535 seconds, not {idle_timeout}")
        if not 1 <= host_ttl <= MAX_HOST_TTL:
            raise InvalidInput(f"host TTL must be 1..{MAX_HOST_TTL} seconds, not {host_ttl}")
        if lab_exists(name):
            raise Conflict(f"lab {name} already exists (remove it with: daolinet lab down --name {name})")
        os.makedirs(plan.lab_dir(name), exist_ok=True)
        lab = cls(state.LabState(name=name, hosts=hosts, racks=racks,
                                 extra={"mtu": mtu, "log_format": log_format, "ipv6": ipv6}))
        lab._save()
        try:
            lab._build_fabric(racks)
            with ThreadPoolExecutor(max_workers=min(len(plans), 8)) as pool:
                list(pool.map(lab._build_host, lab.hosts))
            if controller:
                lab._state.extra.update(idle_timeout=idle_timeout, host_ttl=host_ttl, insecure=insecure)
                lab._save()
                if not insecure:
                    credentials.make_ca(name)
                lab._build_control(controllers)
                lab._start_store(store)
                for index in range(controllers):
                    lab.start_controller(index)
                lab.start_agents()
            lab._state.complete = True
            lab._save()
        except BaseException:
            down(name)
            raise
        return lab

    @classmethod
    def open(cls, name: str) -> Lab:
        plan.check_lab_name(name)
        st = state.load(name)
        if st is None or not st.hosts:
            raise NotFound(f"no lab named {name} (start one with: daolinet lab up --name {name})")
        return cls(st)

    # -- building --------------------------------------------------------

    def _record_netns(self, name: str) -> None:
        with self._lock:
            self._state.netns.append(name)
            self._save()

    def _new_netns(self, name: str) -> None:
        self._record_netns(name)
        links.create_netns(name)

    def _build_fabric(self, racks: int) -> None:
        """A Linux bridge per rack, a router joining them and the outside.
        The router holds only the segment routes: nothing per container."""
        rtr = plan.router_netns(self.name)
        self._new_netns(rtr)
        if self.ipv6:  # before the legs: they inherit it
            links.sysctl(rtr, *links6.underlay_sysctls(forwarding=True))
        gw_macs = {}
        for rack in range(1, racks + 1):
            fab = plan.fabric_netns(self.name, rack)
            self._new_netns(fab)
            links.add_bridge(fab, plan.FABRIC_BRIDGE, mtu=self.mtu)
            links.add_veth(rtr, f"r{rack}", fab, "rtr", mtu=self.mtu)
            links.set_master(fab, "rtr", plan.FABRIC_BRIDGE)
            links.link_up(rtr, f"r{rack}", address=f"{plan.rack_gateway(rack)}/{plan.RACK_PREFIX}")
            if self.ipv6:
                links.add_addr6(rtr, f"r{rack}", f"{plan.rack_gateway6(rack)}/{plan.RACK_PREFIX6}")
            gw_macs[str(rack)] = links.mac_of(rtr, f"r{rack}")
        out = plan.outside_netns(self.name)
        self._new_netns(out)
        if self.ipv6:
            links.sysctl(out, *links6.underlay_sysctls())
        links.add_veth(rtr, "out", out, "eth0", mtu=self.mtu)
        prefix = plan.OUTSIDE_NET.prefixlen
        links.link_up(rtr, "out", address=f"{plan.OUTSIDE_GW}/{prefix}")
        links.link_up(out, "eth0", address=f"{plan.OUTSIDE_IP}/{prefix}")
        links.add_route(out, str(plan.UNDERLAY), str(plan.OUTSIDE_GW))
        if self.ipv6:  # the outside over IPv6 (NAT66 egress, mappings on underlay_ip6)
            prefix6 = plan.OUTSIDE_NET6.prefixlen
            links.add_addr6(rtr, "out", f"{plan.OUTSIDE_GW6}/{prefix6}")
            links.add_addr6(out, "eth0", f"{plan.OUTSIDE_IP6}/{prefix6}")
            links.add_route(out, str(plan.UNDERLAY6), str(plan.OUTSIDE_GW6))
        links.tx_offload_off(out, "eth0")
        links.enable_forwarding(rtr)
        self._state.extra["gateway_macs"] = gw_macs
        self._save()

    def _build_control(self, controllers: int) -> None:
        """The control plane's namespace on rack 1's segment: an address per controller
        and one for etcd, routes to every rack through the router."""
        ctl = plan.control_netns(self.name)
        self._new_netns(ctl)
        fab = plan.fabric_netns(self.name, 1)
        links.add_veth(fab, "ctl", ctl, "eth0", mtu=self.mtu)
        links.set_master(fab, "ctl", plan.FABRIC_BRIDGE)
        links.link_up(fab, "ctl")
        for ip in [*(plan.controller_ip(i) for i in range(controllers)), plan.etcd_ip()]:
            links.link_up(ctl, "eth0", address=f"{ip}/{plan.RACK_PREFIX}")
        links.link_up(ctl, "lo")
        links.add_route(ctl, str(plan.UNDERLAY), str(plan.rack_gateway(1)))
        links.tx_offload_off(ctl, "eth0")

    def _build_host(self, host: LabHost) -> None:
        p = host.plan
        self._new_netns(p.netns)
        if self.ipv6:  # before its interfaces: the bridge's LOCAL port inherits it
            links.sysctl(p.netns, *links6.underlay_sysctls())
        links.add_veth(p.netns, plan.UPLINK, p.fabric_netns, p.fabric_port, mtu=self.mtu)
        if self.ipv6:  # a bridge port, not an interface of the host's stack (as arp_ignore below)
            links.sysctl(p.netns, f"net.ipv6.conf.{plan.UPLINK}.disable_ipv6=1")
        links.set_master(p.fabric_netns, p.fabric_port, plan.FABRIC_BRIDGE)
        pids = host.ovs.start()
        with self._lock:
            self._state.pids.update({f"{p.name}/{k}": v for k, v in pids.items()})
            self._save()
        with host.ovsdb() as db:
            db.ensure_bridge(BridgeConfig(name=plan.BRIDGE, datapath_type="netdev", datapath_id=p.index,
                                          mtu=self.mtu))
            uplink = db.add_port(plan.BRIDGE, plan.UPLINK)
        links.link_up(p.netns, plan.BRIDGE, address=p.underlay_cidr)
        links.tx_offload_off(p.netns, plan.BRIDGE)
        links.add_route(p.netns, str(plan.UNDERLAY), str(p.gateway))
        if self.ipv6:  # the agent reads it off the bridge (its underlay_ip6) and gets --pip-pool6
            links.add_addr6(p.netns, plan.BRIDGE, p.underlay_cidr6)
            links.add_route(p.netns, str(plan.UNDERLAY6), str(p.gateway6))
        # The uplink is a bridge port, not an interface of the host's stack: its kernel
        # must not answer ARP for the host's address on it, or the underlay may send
        # the host's frames to the uplink's own MAC and the kernel would answer them too.
        links.sysctl(p.netns, "net.ipv4.conf.all.arp_ignore=1")
        self._plumb(host, uplink)

    def _plumb(self, host: LabHost, uplink: int) -> None:
        """A bridge without controllers (a lab without daolinet) still carries the host's own
        traffic: the agent's bootstrap flows, host <-> uplink.  With daolinet, the agent's
        first controller flushes them and the agent bootstraps the bridge itself."""
        asyncio.run(bootstrap.plumb(host.ovs.mgmt_sock(plan.BRIDGE), uplink))

    # -- containers --------------------------------------------------------

    @property
    def ipv6(self) -> bool:
        """An IPv6 underlay beside the IPv4 one (labs from before the option: none)."""
        return bool(self._state.extra.get("ipv6", False))

    @property
    def mtu(self) -> int:
        """The underlay's MTU (labs from before the option: 1500)."""
        return int(self._state.extra.get("mtu", plan.DEFAULT_MTU))

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        known = ", ".join(h.name for h in self.hosts)
        raise NotFound(f"lab {self.name} has no host {name} (hosts: {known})")

    # -- running things ----------------------------------------------------

    def netns_of(self, target: str) -> str:
        """A container's or a host's namespace."""
        if target in self._state.containers:
            return str(self._state.containers[target]["netns"])
        if HOST_NAME_RE.match(target):
            return self.host(target).netns
        if target in ("outside", "router"):
            return plan.outside_netns(self.name) if target == "outside" else plan.router_netns(self.name)
        raise NotFound(f"lab {self.name} has no container or host {target} (nor outside, router)")

    def exec_argv(self, target: str, argv: Sequence[str]) -> list[str]:
        return procs.in_netns(self.netns_of(target), argv)

    def exec(self, target: str, argv: Sequence[str], *, timeout: float = 60,
             check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.exec_argv(target, argv), capture_output=True, text=True,
                              timeout=timeout, check=check)

    def popen(self, target: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(self.exec_argv(target, argv), text=True, **kwargs)

    # -- bookkeeping ---------------------------------------------------------

    def _save(self) -> None:
        state.save(self._state)

    def _reload(self) -> None:
        st = state.load(self.name)
        if st is not None:
            self._state = st

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "complete": self._state.complete,
            "racks": self._state.racks,
            "mtu": self.mtu,
            "ipv6": self.ipv6,
            "hosts": [
                {"name": h.name, "netns": h.netns, "underlay_ip": h.underlay_ip,
                 "pip_pool": str(h.plan.pip_pool), "rack": h.plan.rack,
                 **({"underlay_ip6": str(h.plan.underlay_ip6), "pip_pool6": str(h.plan.pip_pool6)}
                    if self.ipv6 else {}),
                 "ovs_rundir": h.ovs.rundir}
                for h in self.hosts
            ],
            "containers": [c.to_json() for c in self.containers],
        }


def lab_exists(name: str) -> bool:
    return os.path.isdir(plan.lab_dir(name)) or bool(links.list_netns(plan.netns_prefix(name)))


def list_labs() -> list[str]:
    names: set[str] = set()
    if os.path.isdir(plan.RUN_ROOT):
        names.update(n for n in os.listdir(plan.RUN_ROOT) if plan.LAB_NAME_RE.match(n))
    for ns in links.list_netns("dl-"):
        parts = ns.split("-")
        if len(parts) >= 3 and plan.LAB_NAME_RE.match(parts[1]):
            names.add(parts[1])
    return sorted(names)


def down(name: str) -> bool:
    """Remove everything lab NAME created; True if there was anything.

    Works from the journal and, in case it is torn, sweeps by name too:
    processes in the lab's namespaces or naming its run dir, then the
    namespaces (which takes every veth with them), then the run dir.
    """
    plan.check_lab_name(name)
    rundir = plan.lab_dir(name)
    docker.stop_all(rundir)  # dockerd first: it stops its own containers
    containerd.stop_all(rundir)  # containers, then shims and containerd
    st = state.load(name)
    namespaces = set(links.list_netns(plan.netns_prefix(name)))
    if st is not None:
        namespaces.update(n for n in st.netns if links.exists(n))
    pids = set(links.pids_in(sorted(namespaces))) | set(procs.pids_mentioning(rundir + "/"))
    if st is not None:
        pids.update(p for p in st.pids.values() if rundir in procs.cmdline(p))
    found = bool(namespaces or pids or os.path.isdir(rundir))
    procs.stop(pids | docker.descendants(pids))  # a Docker container's processes name nothing of ours
    docker.remove_cgroups(name)
    for ns in sorted(namespaces):
        links.remove_netns(ns)
    shutil.rmtree(rundir, ignore_errors=True)
    return found
