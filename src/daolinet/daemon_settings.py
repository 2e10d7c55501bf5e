"""What `daolinet controller` and `daolinet agent` are configured with, and from where.

One frozen pydantic-settings model per daemon holds every key's type, default,
range and help; the typer commands only collect the flags given on the command
line.  `load` layers the sources, lowest first: the model's defaults, the TOML
file (`/etc/daolinet/controller.toml` or `agent.toml`, or `--config PATH`), the
`DAOLINET_<KEY>` environment variables, the flags.  A key is the flag's long name
with `-` turned into `_`; lists may be comma-separated in the environment.

Everything is checked once at start-up: an unknown key, a wrong type or a value
out of range is refused with one line naming where it came from (the file, the
variable or the flag), the key and what was expected.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from daolinet.errors import BadConfig
from daolinet.store.liveness import DEFAULT_HOST_TTL, MAX_HOST_TTL, heartbeat_interval

ENV_PREFIX = "DAOLINET_"
CONFIG_DIR = "/etc/daolinet"
PKI_DIR = f"{CONFIG_DIR}/pki"
LogLevel = Literal["debug", "info", "warning", "error"]
# Lists: repeated flags, TOML arrays, or one comma-separated string (the environment's way).
Targets = Annotated[tuple[str, ...], NoDecode]


class DaemonSettings(BaseSettings):
    """What both daemons share.  Never reads a source by itself: `load` does the layering."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True,
                                      validate_default=True)
    default_file: ClassVar[str]

    tls_cert: str | None = Field(None, description="This daemon's certificate.")
    tls_key: str | None = Field(None, description="Its key.")
    tls_ca: str | None = Field(f"{PKI_DIR}/ca.crt", description="The installation's CA certificate.")
    insecure: bool = Field(False, description="Plaintext channels, no certificates: only for trials.")
    log_level: LogLevel = Field("info", description="debug, info, warning, error.")
    log_format: Literal["text", "json"] = Field("text", description=(
        "text (a line for people) or json (one JSON object a line: time, level, logger, message and "
        "the event's fields)."))
    metrics_listen: str | None = Field(None, description=(
        "HOST:PORT of a separate Prometheus listener serving only /metrics, without a token (default: "
        "none; the API's /metrics stays, for the admin). Conventionally 9650 on a controller, 9651 "
        "on an agent."))

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @field_validator("*", mode="before")
    @classmethod
    def _split_lists(cls, value: Any, info: Any) -> Any:
        """'a, b' (an environment variable, or a lone string in the file) is ['a', 'b']."""
        field = cls.model_fields[info.field_name]
        if isinstance(value, str) and get_origin(field.annotation) is tuple:
            if value.lstrip().startswith("["):
                try:
                    return json.loads(value)
                except ValueError:
                    return value
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def help(cls, key: str) -> str:
        """The key's help for its flag, with the default the flag no longer shows."""
        field = cls.model_fields[key]
        text = field.description or ""
        default = field.default
        if isinstance(default, tuple):
            default = ", ".join(default)
        if default not in (None, "", False, ()):
            text += f" (default: {default})"
        return f"{text} (config key {key}, ${ENV_PREFIX}{key.upper()})"


class ControllerSettings(DaemonSettings):
    default_file: ClassVar[str] = f"{CONFIG_DIR}/controller.toml"

    store: str = Field("sqlite:///var/lib/daolinet/daolinet.db",
                       description="sqlite:///PATH or etcd://H:P,...")
    of_listen: Targets = Field(("ssl:0.0.0.0:6653",), min_length=1, description=(
        "ssl:HOST:PORT (repeatable; tcp:HOST:PORT and unix:PATH only with --insecure)."))
    api_listen: Targets = Field(("127.0.0.1:8650",), min_length=1, description=(
        "HOST:PORT of the REST API (HTTPS with --tls-*), repeatable; unix:PATH serves it on a local "
        "socket too. The first HOST:PORT is the URL peers and agents are told."))
    advertise: Targets = Field((), description=(
        "An IPv4 address of this controller that containers must not reach, beside its listeners' "
        "(repeatable; needed with wildcard listeners such as 0.0.0.0)."))
    idle_timeout: int = Field(30, ge=1, le=65535, description="Seconds before an unused route idles out.")
    drop_timeout: int = Field(3, ge=1, le=65535, description="Seconds a denied destination is dropped.")
    host_ttl: int = Field(DEFAULT_HOST_TTL, ge=1, le=MAX_HOST_TTL, description=(
        "Seconds without a heartbeat before a host and its containers are marked down "
        "(agents heartbeat every TTL/3 s or faster)."))
    ready_file: str | None = Field(None, description="Write {api, of, pid} here once listening.")
    admin_token_file: str | None = Field(None, description=(
        "Admin API token (created, mode 600, if missing). Default: beside the SQLite store."))
    id: str | None = Field(None, description=(
        "This controller's name among several (etcd store). Default: HOST-PID."))
    tls_cert: str | None = Field(f"{PKI_DIR}/controller.crt", description=(
        "This controller's certificate (pki issue controller)."))
    tls_key: str | None = Field(f"{PKI_DIR}/controller.key", description="Its key.")
    etcd_ca: str | None = Field(None, description="CA of the etcd cluster (etcd over TLS).")
    etcd_cert: str | None = Field(None, description="Client certificate for etcd.")
    etcd_key: str | None = Field(None, description="Its key.")


class AgentSettings(DaemonSettings):
    default_file: ClassVar[str] = f"{CONFIG_DIR}/agent.toml"

    controller: Targets = Field(min_length=1, description=(
        "OpenFlow controller target: ssl:IP:PORT (repeatable: every controller; tcp:IP:PORT or "
        "unix:PATH only with --insecure)."))
    pip_pool: str = Field(description="This host's PIP pool (part of its underlay subnet).")
    pip_pool6: str = Field("", description=(
        "This host's IPv6 PIP pool (part of its IPv6 underlay subnet, read off the bridge's global "
        "IPv6 address): dual-stack containers need it ('' : none)."))
    bridge: str = Field("daolinet", min_length=1, description="OVS bridge to own.")
    uplink: str = Field("eth0", min_length=1, description="Underlay interface to add to the bridge.")
    datapath: Literal["auto", "system", "netdev"] = Field("auto", description=(
        "OVS datapath: system (kernel module), netdev (userspace), or auto (system where the "
        "openvswitch module loads, else netdev)."))
    name: str | None = Field(None, description="Host name (default: this machine's).")
    ovsdb: str = Field("unix:/var/run/openvswitch/db.sock", description="OVSDB endpoint.")
    netns: str | None = Field(None, description="Host network namespace (lab).")
    datapath_id: int | None = Field(None, ge=0, lt=1 << 64, description="Force the bridge's datapath id.")
    listen: str = Field("/run/daolinet/agent.sock", description="Unix socket of the local API.")
    trace_port: int = Field(8651, ge=0, le=65535, description=(
        "TCP port of the controllers' read-only traces of this bridge, HTTPS on the underlay address "
        "(mutual TLS: a controller or operator certificate); 0: none. Not served with --insecure."))
    heartbeat: float = Field(heartbeat_interval(DEFAULT_HOST_TTL), gt=0, description=(
        "Seconds between heartbeats: at most the controllers' --host-ttl / 3."))
    ready_file: str | None = Field(None, description="Write {listen, host, pid} here when ready.")
    token_file: str | None = Field(None, description=(
        "File holding a host token (only with --insecure: with TLS the host certificate is the "
        "agent's credential)."))
    tls_cert: str | None = Field(f"{PKI_DIR}/host.crt", description=(
        "This host's certificate (pki issue host NAME)."))
    tls_key: str | None = Field(f"{PKI_DIR}/host.key", description="Its key.")
    underlay_gateway_mac: str = Field("", description=(
        "MAC of the underlay router: next hop towards hosts on other segments."))
    docker_plugin_dir: str = Field("/run/docker/plugins", description=(
        "Serve Docker's network and IPAM plugin as DIR/daolinet.sock ('' : no plugin)."))
    docker_host: str = Field("unix:///run/docker.sock", description=(
        "This host's dockerd, to keep its networks in step ('' : no sync)."))
    docker_sync: float = Field(5.0, gt=0, description="Seconds between syncs of Docker networks.")
    docker_state: str = Field("/var/lib/daolinet/docker-networks.json", description=(
        "File keeping which Docker network is which daolinet network, read at start: after a "
        "reboot dockerd restores containers before the agent can ask it ('' : memory only)."))
    api: Targets = Field((), description=(
        "Controller REST API URL, e.g. https://10.0.0.1:8650 (repeatable or comma-separated: every "
        "controller; the agent fails over between them)."))
    api_file: str | None = Field(None, description=(
        "File of controller REST API URLs, one a line (while readable, it wins over --api); "
        "read again whenever a controller fails."))
    dns_upstream: Targets = Field((), description=(
        "Resolver for the names containers ask that are not their tenant's (repeatable; default: "
        "the nameservers of /etc/resolv.conf)."))


S = TypeVar("S", bound=DaemonSettings)


def load(model: type[S], flags: Mapping[str, Any], config: str | None = None) -> S:
    """The settings: `flags` (None: not given) over $DAOLINET_* over the file over the defaults.
    `config` None reads the model's default file if there is one; "" reads no file."""
    path = model.default_file if config is None else config
    layers: list[tuple[str, dict[str, Any]]] = [
        ("file", read_file(path, explicit=config is not None) if path else {}),
        ("env", EnvSettingsSource(model)()),
        ("flag", {k: v for k, v in flags.items() if v is not None}),
    ]
    merged: dict[str, Any] = {}
    for _, values in layers:
        merged.update(values)
    try:
        return model(**merged)
    except ValidationError as e:
        errors = sorted(e.errors(), key=lambda err: err["type"] == "missing")  # a wrong value first
        raise BadConfig(describe(model, errors[0], layers, path)) from None


def read_file(path: str, explicit: bool) -> dict[str, Any]:
    """The TOML file's keys; a missing default file is no file, a missing explicit one an error.
    Read here rather than by pydantic-settings' TOML source, which takes an unreadable path
    for an empty file."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise BadConfig(f"{path}: no such file") from None
        return {}
    except OSError as e:
        raise BadConfig(f"{path}: cannot read it: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BadConfig(f"{path}: not valid TOML: {e}") from None


def describe(model: type[DaemonSettings], error: Mapping[str, Any],
             layers: list[tuple[str, dict[str, Any]]], path: str) -> str:
    """One line for pydantic's `error`: where the value came from, the key, what was expected."""
    key = str(error["loc"][0]) if error["loc"] else "?"
    flag, env = "--" + key.replace("_", "-"), ENV_PREFIX + key.upper()
    if error["type"] == "missing":
        where = f" or {key} in {path}" if path else ""
        return f"{key} is required: give {flag}, ${env}{where}"
    if key not in model.model_fields:
        close = difflib.get_close_matches(key, list(model.model_fields), n=1)
        return f"{path}: {key}: unknown key" + (f" (did you mean {close[0]}?)" if close else "")
    source = next(name for name, values in reversed(layers) if key in values)
    value = dict(layers)[source][key]
    where = {"file": f"{path}: {key}", "env": f"${env}", "flag": flag}[source]
    return f"{where}: expected {expected(model.model_fields[key])}, got {json.dumps(value, default=str)}"


def expected(field: FieldInfo) -> str:
    """What a key takes, in words: 'a whole number from 1 to 65535', 'one of auto, system, netdev'."""
    kind = field.annotation
    if get_origin(kind) in (Union, UnionType):  # X | None: the X
        kind = next(t for t in get_args(kind) if t is not type(None))
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(map(str, get_args(kind)))
    if get_origin(kind) is tuple:
        return f"a list of strings{_bounds(field)} (or one comma-separated string)"
    words: dict[Any, str] = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    return words.get(kind, str(kind)) + _bounds(field)


def _bounds(field: FieldInfo) -> str:
    """' from 1 to 65535', ' above 0', ', not empty': the field's constraints in words."""
    limits: dict[str, Any] = {}
    for m in field.metadata:
        for name in ("ge", "gt", "le", "lt", "min_length"):
            if getattr(m, name, None) is not None:
                limits[name] = getattr(m, name)
    if "ge" in limits and "le" in limits:
        return f" from {limits['ge']} to {limits['le']}"
    words = {"ge": "at least", "gt": "above", "le": "at most", "lt": "below"}
    text = ",".join(f" {words[k]} {v}" for k, v in limits.items() if k in words)
    return text + (", not empty" if limits.get("min_length") else "")
