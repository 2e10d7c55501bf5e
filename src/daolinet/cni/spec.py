"""The CNI protocol (spec 1.0.0 and 1.1.0) as data: environment and stdin in,
a `CniRequest` or a `CniError` out; results and errors built as dicts.  No
I/O: the shim and the agent both call `parse`.

Spec points this follows: CNI_COMMAND is ADD, DEL, CHECK, VERSION, STATUS or
GC; ADD, DEL and CHECK need CNI_CONTAINERID and CNI_IFNAME, ADD and CHECK
also CNI_NETNS (DEL works without it); CNI_ARGS is KEY=VALUE;... and unknown
keys are refused unless IgnoreUnknown is set; errors are
{cniVersion, code, msg, details} on stdout with a non-zero exit, using the
spec's codes (below); VERSION answers for any version asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daolinet.model.objects import DEFAULT_TENANT

SUPPORTED = ("1.0.0", "1.1.0")
PREFERRED = "1.1.0"
PLUGIN_TYPE = "daolinet-cni"
DEFAULT_SOCKET = "/run/daolinet/agent.sock"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")

# Well-known error codes (spec section "Error codes").
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILED = 6
INVALID_CONFIG = 7
TRY_AGAIN = 11
NOT_AVAILABLE = 50
# Plugin-specific codes (100 and up).
IN_USE = 100  # the address or the name is taken
NOT_AS_EXPECTED = 101  # CHECK found the container's networking changed

_CONTAINER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CONFIG_KEYS = {
    "cniVersion", "cniVersions", "name", "type", "args", "ipMasq", "ipam", "dns", "runtimeConfig",
    "capabilities", "prevResult", "cni.dev/valid-attachments", "cni.dev/attachments",
    # daolinet's own
    "network", "tenant", "agentSocket",
}
_ARGS_KEYS = {"IP", "MAC", "IgnoreUnknown"}


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, version: str = PREFERRED) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class CniRequest:
    command: str
    version: str
    name: str = ""  # the CNI network's name
    network: str = ""  # the daolinet network (default: `name`)
    tenant: str = DEFAULT_TENANT
    agent_socket: str = DEFAULT_SOCKET
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    ip: str | None = None
    mac: str | None = None
    prev_result: dict[str, Any] | None = None
    valid_attachments: tuple[tuple[str, str], ...] = ()
    config: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def endpoint_name(self) -> str:
        """The daolinet endpoint of this attachment (the key is container id + ifname)."""
        return f"cni-{self.container_id}-{self.ifname}"


def version_of(stdin: bytes) -> str:
    """The version to answer in: the config's, when we speak it."""
    try:
        version = json.loads(stdin).get("cniVersion")
    except (ValueError, AttributeError):
        return PREFERRED
    return version if version in SUPPORTED else PREFERRED


def version_result(version: str) -> dict[str, Any]:
    return {"cniVersion": version if version in SUPPORTED else PREFERRED,
            "supportedVersions": list(SUPPORTED)}


def parse(env: Mapping[str, str], stdin: bytes) -> CniRequest:
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(INVALID_ENV, f"CNI_COMMAND {command!r} is not one of {', '.join(COMMANDS)}")
    if command == "VERSION":
        return CniRequest(command=command, version=version_of(stdin))
    config = _config(stdin)
    version = _version(config)
    _check_keys(config)
    name = _text(config, "name", required=True)
    base: dict[str, Any] = {"command": command, "version": version, "name": name, "config": config,
            "network": _text(config, "network") or name, "tenant": _text(config, "tenant") or DEFAULT_TENANT,
            "agent_socket": _text(config, "agentSocket") or DEFAULT_SOCKET}
    if command == "STATUS":
        return CniRequest(**base)
    if command == "GC":
        return CniRequest(**base, valid_attachments=_attachments(config))
    return CniRequest(**base, **_attachment_env(env, command), **_wanted_address(env, config),
                      prev_result=_prev_result(config, command))


# -- pieces --------------------------------------------------------------------------


def _config(stdin: bytes) -> dict[str, Any]:
    try:
        config = json.loads(stdin)
    except ValueError as e:
        raise CniError(DECODE_FAILED, "the network configuration on stdin is not JSON", str(e)) from None
    if not isinstance(config, dict):
        raise CniError(DECODE_FAILED, "the network configuration on stdin must be a JSON object")
    return config


def _version(config: Mapping[str, Any]) -> str:
    version = config.get("cniVersion")
    if version not in SUPPORTED:
        raise CniError(INCOMPATIBLE_VERSION, f"cniVersion {version!r} is not supported",
                       f"supported: {', '.join(SUPPORTED)}")
    return str(version)


def _check_keys(config: Mapping[str, Any]) -> None:
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise CniError(UNSUPPORTED_FIELD, f"unsupported field {unknown[0]}={json.dumps(config[unknown[0]])}")


def _text(config: Mapping[str, Any], key: str, required: bool = False) -> str:
    value = config.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise CniError(INVALID_CONFIG, f"{key} must be a non-empty string, not {json.dumps(value)}")
    return value


def _attachment_env(env: Mapping[str, str], command: str) -> dict[str, Any]:
    cid, ifname, netns = env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", ""), env.get("CNI_NETNS", "")
    if not _CONTAINER_ID_RE.match(cid):
        raise CniError(INVALID_ENV, f"CNI_CONTAINERID {cid!r} must be letters, digits, '_', '.', '-'")
    if not ifname or len(ifname) > 15 or ifname in (".", "..") or re.search(r"[/:\s]", ifname):
        raise CniError(INVALID_ENV, f"CNI_IFNAME {ifname!r} is not a valid interface name")
    if command != "DEL" and not netns:
        raise CniError(INVALID_ENV, f"{command} needs CNI_NETNS")
    return {"container_id": cid, "ifname": ifname, "netns": netns}


def cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS: "K=V;K=V"."""
    out: dict[str, str] = {}
    for part in filter(None, text.split(";")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise CniError(INVALID_ENV, f"CNI_ARGS part {part!r} is not KEY=VALUE")
        out[key] = value
    ignore = out.get("IgnoreUnknown", "").lower() in ("1", "true")
    unknown = sorted(set(out) - _ARGS_KEYS)
    if unknown and not ignore:
        raise CniError(UNSUPPORTED_FIELD, f"unsupported CNI_ARGS key {unknown[0]}={out[unknown[0]]}")
    return out


def _wanted_address(env: Mapping[str, str], config: Mapping[str, Any]) -> dict[str, Any]:
    """A requested IP and MAC: runtimeConfig (capabilities "ips", "mac"), else CNI_ARGS."""
    args = cni_args(env.get("CNI_ARGS", ""))
    runtime = config.get("runtimeConfig") or {}
    if not isinstance(runtime, dict):
        raise CniError(INVALID_CONFIG, "runtimeConfig must be an object")
    ips = runtime.get("ips") or []
    if not isinstance(ips, list) or not all(isinstance(i, str) for i in ips):
        raise CniError(INVALID_CONFIG, "runtimeConfig.ips must be a list of addresses")
    ip = ips[0].split("/")[0] if ips else args.get("IP")
    mac = runtime.get("mac") or args.get("MAC")
    return {"ip": ip or None, "mac": str(mac) if mac else None}


def _prev_result(config: Mapping[str, Any], command: str) -> dict[str, Any] | None:
    prev = config.get("prevResult")
    if prev is None and command == "CHECK":
        raise CniError(INVALID_CONFIG, "CHECK needs prevResult, the result of the ADD")
    if prev is not None and not isinstance(prev, dict):
        raise CniError(INVALID_CONFIG, "prevResult must be an object")
    return prev


def _attachments(config: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    found = config.get("cni.dev/valid-attachments", config.get("cni.dev/attachments", []))
    if not isinstance(found, list):
        raise CniError(INVALID_CONFIG, "cni.dev/valid-attachments must be a list")
    out = []
    for a in found:
        if not isinstance(a, dict) or not isinstance(a.get("containerID"), str):
            raise CniError(INVALID_CONFIG, f"invalid attachment {json.dumps(a)}: needs containerID")
        out.append((a["containerID"], str(a.get("ifname", ""))))
    return tuple(out)


# -- results -----------------------------------------------------------------------------


def add_result(req: CniRequest, endpoint: Mapping[str, Any], network: Mapping[str, Any],
               host_mac: str, mtu: int) -> dict[str, Any]:
    """ADD's result: the host-side port and the container's interface, its
    address, the default route through the network's gateway, and that gateway as
    the container's nameserver (its host's agent answers there: flows/dns.py).
    A dual-stack endpoint (it has an ip6: the daolinet network decides, the CNI
    config says nothing) gets the same in IPv6 after the IPv4 entries."""
    prefix = str(network["subnet"]).split("/")[1]
    sandbox: dict[str, Any] = {"name": req.ifname, "mac": endpoint["mac"], "sandbox": req.netns}
    host: dict[str, Any] = {"name": endpoint["port"], "mac": host_mac}
    if req.version != "1.0.0":
        sandbox["mtu"] = host["mtu"] = mtu
    ips = [{"address": f"{endpoint['ip']}/{prefix}", "gateway": network["gateway"], "interface": 1}]
    routes = [{"dst": "0.0.0.0/0", "gw": network["gateway"]}]
    nameservers = [network["gateway"]]
    if endpoint.get("ip6"):
        prefix6 = str(network["subnet6"]).split("/")[1]
        ips.append({"address": f"{endpoint['ip6']}/{prefix6}", "gateway": network["gateway6"],
                    "interface": 1})
        routes.append({"dst": "::/0", "gw": network["gateway6"]})
        nameservers.append(network["gateway6"])
    return {"cniVersion": req.version, "interfaces": [host, sandbox], "ips": ips, "routes": routes,
            "dns": {"nameservers": nameservers}}


def expected(req: CniRequest) -> tuple[str, str, str]:
    """(MAC, IPv4 address/prefix, IPv6 address/prefix or "") of the container's
    interface in prevResult."""
    prev = req.prev_result or {}
    ifaces = prev.get("interfaces") or []
    for index, iface in enumerate(ifaces):
        if isinstance(iface, dict) and iface.get("name") == req.ifname and iface.get("sandbox"):
            found = [str(ip.get("address", "")) for ip in prev.get("ips") or []
                     if isinstance(ip, dict) and ip.get("interface") == index]
            v4 = [a for a in found if ":" not in a]
            v6 = [a for a in found if ":" in a]
            if v4:
                return str(iface.get("mac", "")), v4[0], v6[0] if v6 else ""
    raise CniError(INVALID_CONFIG, f"prevResult has no interface {req.ifname} with an address")
