"""Docker's remote NetworkDriver and IpamDriver protocols as data: request
bodies parsed into frozen requests, answers built as dicts.  No I/O here;
docker_driver.py and docker_ipam.py do the work, docker_plugin.py serves it.

IPv6 (`docker network create --ipv6 --subnet V4 --subnet V6`): a Docker network
over a dual-stack daolinet network must be dual-stack too, with the same IPv6
subnet (the store gives every endpoint of such a network both addresses).
dockerd asks the IPAM for an endpoint's IPv4 address first, then its IPv6
one (libnetwork's endpoint.assignAddress), both with the endpoint's MAC.

The wire format (libnetwork's remote.md and ipam.md): every call is an HTTP
POST to /<Interface>.<Method> with a JSON body (empty for the handshake);
a driver error is {"Err": msg}, an IPAM error {"Error": msg}; a method the
plugin does not implement answers 404.  A body we cannot read is a
`ProtocolError` (HTTP 400).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daolinet.errors import InvalidInput
from daolinet.model import addresses
from daolinet.model.objects import DEFAULT_TENANT

PLUGIN_NAME = "daolinet"  # the socket is <plugin dir>/daolinet.sock; `docker network create -d daolinet`
IMPLEMENTS = ("NetworkDriver", "IpamDriver")
ADDRESS_SPACE = "daolinet"
POOL_PREFIX = "daolinet/"
DST_PREFIX = "eth"  # Docker renames the moved interface to eth<N>
GENERIC = "com.docker.network.generic"
ENABLE_IPV6 = "com.docker.network.enable_ipv6"
PORTMAP = "com.docker.network.portmap"  # -p: [{"Proto": 6, "Port": 80, "HostIP": "", "HostPort": 8080, ...}]
PROTOCOLS = {6: "tcp", 17: "udp", 132: "sctp"}  # PortBinding.Proto (IANA numbers)
ANY_HOST_IP = ("", "0.0.0.0", "::")
MAC_OPTION = "com.docker.network.endpoint.macaddress"
ADDRESS_TYPE = "RequestAddressType"
GATEWAY_TYPE = "com.docker.network.gateway"
# `docker network create -o KEY=VALUE`: what daolinet understands.
OPT_TENANT, OPT_NETWORK, OPT_ISOLATED = "tenant", "network", "isolated"
OPT_EXISTING = "daolinet.existing"  # set by the agent's own sync: adopt the network, never create it
NETWORK_OPTIONS = (OPT_TENANT, OPT_NETWORK, OPT_ISOLATED, OPT_EXISTING)
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


class ProtocolError(InvalidInput):
    """A request body that does not follow the protocol (answered with HTTP 400)."""


def driver_error(message: str) -> dict[str, str]:
    return {"Err": message}


def ipam_error(message: str) -> dict[str, str]:
    return {"Error": message}


def pool_id(subnet: str) -> str:
    """Identical pool requests get the same id: it is the subnet itself."""
    return POOL_PREFIX + subnet


def subnet_of_pool(pid: object) -> str:
    if not isinstance(pid, str) or not pid.startswith(POOL_PREFIX):
        raise ProtocolError(f"unknown PoolID {pid!r}: daolinet's pools are {POOL_PREFIX}SUBNET")
    return check_either_subnet(pid[len(POOL_PREFIX):], "pool")


def is_v6(subnet: str) -> bool:
    """Whether a subnet (already checked) is an IPv6 one."""
    return ":" in subnet


def check_either_subnet(text: str, what: str) -> str:
    """An IPv4 or an IPv6 subnet, checked as the store checks either."""
    if is_v6(text):
        return str(addresses.check_subnet6(text, what))
    return str(addresses.check_subnet(text, what))


def check_either_in_subnet(text: str, subnet: str, what: str) -> str:
    if is_v6(subnet):
        return str(addresses.check_in_subnet6(text, ipaddress.IPv6Network(subnet), what))
    return str(addresses.check_in_subnet(text, ipaddress.IPv4Network(subnet), what))


# -- field access ----------------------------------------------------------------


def _obj(body: object, what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ProtocolError(f"{what} must be a JSON object")
    return body


def _str(body: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = body.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ProtocolError(f"{key} must be a non-empty string, not {value!r}")
    return value


def ids(body: object) -> tuple[str, str]:
    """(NetworkID, EndpointID) of an endpoint call."""
    request = _obj(body, "request")
    return _str(request, "NetworkID"), _str(request, "EndpointID")


def network_id(body: object) -> str:
    return _str(_obj(body, "request"), "NetworkID")


def _flag(key: str, value: object) -> bool:
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise InvalidInput(f"-o {key}={value}: use true or false")


# -- NetworkDriver -----------------------------------------------------------------


@dataclass(frozen=True)
class NetworkRequest:
    """CreateNetwork: a Docker network over daolinet network `name` of `tenant`
    (None: name it after the Docker network)."""

    nid: str
    tenant: str
    name: str | None
    subnet: str
    gateway: str
    isolated: bool = False
    existing: bool = False
    subnet6: str = ""  # --ipv6: the IPv6 subnet ("" : an IPv4-only Docker network)
    gateway6: str = ""


def parse_network_options(options: object) -> dict[str, str]:
    """`-o` options, unknown keys refused by name."""
    opts = _obj(options if options is not None else {}, GENERIC)
    unknown = sorted(set(opts) - set(NETWORK_OPTIONS))
    if unknown:
        raise InvalidInput(f"unknown option -o {unknown[0]}: daolinet takes -o tenant=T, -o network=NAME "
                           "and -o isolated=true")
    return {k: str(v) for k, v in opts.items()}


def _v6_data(request: Mapping[str, Any], options: Mapping[str, Any]) -> tuple[str, str]:
    """(subnet6, gateway6) of a --ipv6 network, ("", "") without --ipv6."""
    v6 = request.get("IPv6Data") or []
    if options.get(ENABLE_IPV6) is not True and not v6:
        return "", ""
    if not isinstance(v6, list) or len(v6) != 1:
        raise InvalidInput("a dual-stack daolinet network has exactly one IPv6 subnet: give --ipv6 "
                           "--subnet V4CIDR --subnet V6CIDR")
    data = _obj(v6[0], "IPv6Data")
    subnet6 = addresses.check_subnet6(_str(data, "Pool"), "IPv6 subnet")
    gateway6 = _str(data, "Gateway", required=False).split("/")[0]
    if data.get("AuxAddresses"):
        raise InvalidInput("daolinet does not reserve auxiliary addresses: drop --aux-address")
    checked = addresses.check_in_subnet6(gateway6, subnet6, "IPv6 gateway") if gateway6 else ""
    return str(subnet6), str(checked)


def parse_create_network(body: object) -> NetworkRequest:
    request = _obj(body, "request")
    options = _obj(request.get("Options") or {}, "Options")
    subnet6, gateway6 = _v6_data(request, options)
    opts = parse_network_options(options.get(GENERIC))
    v4 = request.get("IPv4Data")
    if not isinstance(v4, list) or len(v4) != 1:
        raise InvalidInput("a daolinet network has exactly one IPv4 subnet: give one --subnet")
    data = _obj(v4[0], "IPv4Data")
    subnet = addresses.check_subnet(_str(data, "Pool"), "subnet")
    gateway = _str(data, "Gateway", required=False).split("/")[0]
    if data.get("AuxAddresses"):
        raise InvalidInput("daolinet does not reserve auxiliary addresses: drop --aux-address")
    return NetworkRequest(
        nid=_str(request, "NetworkID"), tenant=opts.get(OPT_TENANT) or DEFAULT_TENANT,
        name=opts.get(OPT_NETWORK) or None, subnet=str(subnet),
        gateway=str(addresses.check_in_subnet(gateway, subnet, "gateway")) if gateway else "",
        isolated=_flag(OPT_ISOLATED, opts.get(OPT_ISOLATED, "")),
        existing=_flag(OPT_EXISTING, opts.get(OPT_EXISTING, "")), subnet6=subnet6, gateway6=gateway6)


@dataclass(frozen=True)
class PortBinding:
    """One `-p HOSTPORT:PORT[/PROTO]`: a daolinet port mapping on the container's host."""

    protocol: str  # "tcp" | "udp"
    host_port: int
    container_port: int

    @property
    def rule(self) -> str:
        return f"{self.host_port}:{self.container_port}/{self.protocol}"


def _port(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ProtocolError(f"{what} must be a port number, not {value!r}")
    return value


def parse_port_bindings(options: object, host_ip: str = "") -> list[PortBinding]:
    """The `-p` bindings of an endpoint's (or sandbox's) options, deduplicated
    (dockerd may give one per address family).  daolinet publishes on the
    host's underlay IP, on a host port the user names: no ranges, no -P."""
    opts = _obj(options if options is not None else {}, "Options")
    raw = opts.get(PORTMAP) or []
    if not isinstance(raw, list):
        raise ProtocolError(f"{PORTMAP} must be a list")
    out: list[PortBinding] = []
    for item in raw:
        mapping = _obj(item, PORTMAP)
        proto = PROTOCOLS.get(mapping.get("Proto"))  # type: ignore[arg-type]
        port = _port(mapping.get("Port"), "Port")
        host_port = _port(mapping.get("HostPort") or 0, "HostPort")
        end = _port(mapping.get("HostPortEnd") or 0, "HostPortEnd")
        ip = str(mapping.get("HostIP") or "")
        if proto not in ("tcp", "udp"):
            raise InvalidInput(f"-p ...:{port}/{proto or mapping.get('Proto')}: "
                               "daolinet publishes tcp, udp only")
        if host_port == 0:
            raise InvalidInput(f"-p {port}/{proto} (or -P) leaves the host port to pick: daolinet publishes "
                               f"on the host port you name, -p HOSTPORT:{port}/{proto}")
        if end not in (0, host_port):
            raise InvalidInput(f"-p {host_port}-{end}:{port}/{proto}: give one host port, not a range")
        if ip not in ANY_HOST_IP and ip != host_ip:
            raise InvalidInput(f"-p {ip}:{host_port}:{port}/{proto}: daolinet publishes on the host's "
                               f"underlay IP{' ' + host_ip if host_ip else ''}: drop the address")
        pb = PortBinding(protocol=proto, host_port=host_port, container_port=port)
        clash = [earlier for earlier in out if (earlier.protocol, earlier.host_port) == (proto, host_port)]
        if clash and clash[0] != pb:
            raise InvalidInput(f"host port {host_port}/{proto} is published twice")
        if not clash:
            out.append(pb)
    return out


@dataclass(frozen=True)
class EndpointRequest:
    nid: str
    eid: str
    ip: str
    mac: str
    ports: tuple[PortBinding, ...] = ()
    ip6: str = ""  # on a --ipv6 network: the address daolinet's IPAM gave


def parse_create_endpoint(body: object, host_ip: str = "") -> EndpointRequest:
    nid, eid = ids(body)
    request = _obj(body, "request")
    iface = _obj(request.get("Interface") or {}, "Interface")
    address = _str(iface, "Address", required=False)
    if not address:
        raise InvalidInput("the endpoint has no IPv4 address: use --ipam-driver daolinet")
    address6 = _str(iface, "AddressIPv6", required=False)
    ip = str(addresses.check_address(address.split("/")[0], "address"))
    ip6 = str(addresses.check_address6(address6.split("/")[0], "AddressIPv6")) if address6 else ""
    mac = _str(iface, "MacAddress", required=False)
    options = _obj(request.get("Options") or {}, "Options")
    return EndpointRequest(nid=nid, eid=eid, ip=ip, mac=addresses.check_mac(mac) if mac else "",
                           ports=tuple(parse_port_bindings(options, host_ip)), ip6=ip6)


def join_response(peer: str, gateway: str, gateway6: str = "") -> dict[str, Any]:
    """Docker moves `peer` into the sandbox as eth<N> and routes by `gateway`
    (and `gateway6`: Docker then turns IPv6 on for eth<N> and adds its address
    without DAD); the subnet is on-link, so no static routes are needed."""
    out: dict[str, Any] = {"InterfaceName": {"SrcName": peer, "DstPrefix": DST_PREFIX}, "Gateway": gateway,
                           "StaticRoutes": []}
    if gateway6:
        out["GatewayIPv6"] = gateway6
    return out


def capabilities() -> dict[str, str]:
    # local: every host's dockerd keeps its own copy of a network (the agents keep
    # them in step); global connectivity: its containers reach each other across hosts.
    return {"Scope": "local", "ConnectivityScope": "global"}


# -- IpamDriver ---------------------------------------------------------------------


def ipam_capabilities() -> dict[str, bool]:
    # The MAC comes with every RequestAddress: the reservation is the endpoint itself.
    return {"RequiresMACAddress": True, "RequiresRequestReplay": False}


def address_spaces() -> dict[str, str]:
    return {"LocalDefaultAddressSpace": ADDRESS_SPACE, "GlobalDefaultAddressSpace": ADDRESS_SPACE}


def parse_pool_request(body: object) -> str:
    """RequestPool: the subnet (IPv6 when V6).  daolinet never picks one, nor a sub-range."""
    request = _obj(body, "request")
    v6 = request.get("V6") is True
    pool = _str(request, "Pool", required=False)
    if not pool:
        if v6:
            raise InvalidInput("give the network's IPv6 subnet too: --ipv6 --subnet V4CIDR --subnet V6CIDR")
        raise InvalidInput("give the network's subnet: --subnet CIDR")
    if _str(request, "SubPool", required=False):
        raise InvalidInput("daolinet allocates from the whole subnet: drop --ip-range")
    opts = _obj(request.get("Options") or {}, "Options")
    if opts:
        raise InvalidInput(f"unknown IPAM option {sorted(opts)[0]}: daolinet's IPAM takes none")
    return str(addresses.check_subnet6(pool, "IPv6 subnet") if v6 else addresses.check_subnet(pool, "subnet"))


def parse_release_pool(body: object) -> str:
    return subnet_of_pool(_obj(body, "request").get("PoolID"))


def pool_response(subnet: str) -> dict[str, Any]:
    return {"PoolID": pool_id(subnet), "Pool": subnet, "Data": {}}


@dataclass(frozen=True)
class AddressRequest:
    subnet: str
    address: str | None  # a preferred address (--ip, --gateway), or None
    gateway: bool  # the network's gateway, asked for when the network is created
    mac: str | None

    @property
    def v6(self) -> bool:
        return is_v6(self.subnet)


def parse_address_request(body: object) -> AddressRequest:
    request = _obj(body, "request")
    subnet = subnet_of_pool(request.get("PoolID"))
    address = _str(request, "Address", required=False) or None
    opts = _obj(request.get("Options") or {}, "Options")
    mac = opts.get(MAC_OPTION)
    if address is not None:
        address = check_either_in_subnet(address, subnet, "address")
    return AddressRequest(subnet=subnet, address=address, gateway=opts.get(ADDRESS_TYPE) == GATEWAY_TYPE,
                          mac=addresses.check_mac(mac) if isinstance(mac, str) and mac else None)


def address_response(ip: str, subnet: str) -> dict[str, Any]:
    return {"Address": f"{ip}/{ipaddress.ip_network(subnet).prefixlen}", "Data": {}}


def parse_release_address(body: object) -> tuple[str, str]:
    request = _obj(body, "request")
    subnet = subnet_of_pool(request.get("PoolID"))
    address = _str(request, "Address")
    checked = addresses.check_address6(address, "Address") if is_v6(subnet) \
        else addresses.check_address(address, "Address")
    return subnet, str(checked)
