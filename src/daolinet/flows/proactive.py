"""Everything proactive a host's switch holds, decided from the View alone (pure):
its pipeline and per-port classify flows (flows/base.py), the guard's drops to
every infrastructure address (flows/infra.py), and the port mappings' flows
(flows/portmap.py) with what lets containers reach them.  controller/sync.py
sends these and reconciles them with what the switch reports."""

from __future__ import annotations

from daolinet.flows import base
from daolinet.flows.infra import flow_for_mapped_replies, flow_to_portmap, flows_for_infra
from daolinet.flows.portmap import flows_for_portmap
from daolinet.flows.spec import FlowSpec
from daolinet.model import Host, Portmap, View


def flows_for_host_switch(view: View, host: Host) -> list[FlowSpec]:
    wanted = base.flows_for_switch(host, view.endpoints_on(host.name)) + flows_for_infra(view.infra_ips())
    for pm in view.portmaps.values():
        wanted += portmap_flows(view, pm).get(host.dpid, []) + to_portmap(view, pm)
    return wanted


def portmap_flows(view: View, pm: Portmap) -> dict[int, list[FlowSpec]]:
    """The mapping's flows per dpid (on its host and its container's); none while its
    container is not plugged."""
    a = view.endpoint_named(pm.tenant, pm.container)
    h = view.hosts.get(pm.host)
    s = view.host_of(a) if a else None
    if a is None or a.ofport is None or h is None or s is None:
        return {}
    flows = flows_for_portmap(pm, a, h, s)
    flows.setdefault(s.dpid, []).append(flow_for_mapped_replies(pm, a, h, s))
    return flows


def to_portmap(view: View, pm: Portmap) -> list[FlowSpec]:
    """What lets any host's containers reach the mapping (nothing while it is not plugged)."""
    a, h = view.endpoint_named(pm.tenant, pm.container), view.hosts.get(pm.host)
    plugged = a is not None and a.ofport is not None and view.host_of(a) is not None
    return [flow_to_portmap(pm, h)] if h is not None and plugged else []
