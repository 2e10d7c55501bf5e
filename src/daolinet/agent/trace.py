"""Read-only traces of the agent's own bridge, for the controllers (`daolinet trace`).

Two operations, served on the agent's trace listener (HTTPS on the host's underlay
address, mutual TLS: only a controller's or an operator's certificate may call them):

    POST /trace/ofproto  a flow (typed fields, validated) -> ovs-appctl ofproto/trace's
                         output and its verdict (drop, to the controller, forwarded)
    GET  /trace/flows?cookie=N  the bridge's flows of one route (ovs-ofctl dump-flows)

No request field ever reaches a shell: the flow text is built here from validated
fields and handed to ovs-appctl as one argument of an argument list.  `probe_text`
and `verdict_of` are pure (tests/unit/test_agent_trace.py); `BridgeTracer` runs the tools.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, Field, model_validator

from daolinet.agent.bootstrap import ALL_BITS, DEFAULT_OVS_RUNDIR
from daolinet.api_common import AGENT_TRACE_PORT, IDENTITY, PeerIdentityProtocol, Strict, validation_message
from daolinet.errors import SystemFailure
from daolinet.pipeline import GEN_MASK
from daolinet.security.identity import Identity
from daolinet.security.tls import TlsFiles

MAC = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")]
IP = Annotated[str, AfterValidator(lambda v: str(ip_address(v)))]  # ValueError: one-line 422
DEFAULT_PORT = AGENT_TRACE_PORT  # the agent's trace listener, on its underlay address
TOOL_TIMEOUT = 5.0  # seconds ovs-appctl / ovs-ofctl may take
ALLOWED_ROLES = ("controller", "user")  # a controller, or an operator (admin) certificate


class ProbeIn(Strict):
    """One packet, as it arrives on this bridge: IPv4, or IPv6 when both addresses are
    IPv6 ones ("icmp" is then an ICMPv6 echo request; nw_ttl its hop limit)."""

    in_port: int = Field(ge=1, le=0xFEFF)
    dl_src: MAC
    dl_dst: MAC
    nw_src: IP
    nw_dst: IP
    nw_ttl: int = Field(64, ge=1, le=255)
    protocol: Literal["icmp", "tcp", "udp"] = "icmp"
    tp_src: int = Field(0, ge=0, le=65535)
    tp_dst: int = Field(0, ge=0, le=65535)

    @model_validator(mode="after")
    def _one_family(self) -> ProbeIn:
        if (":" in self.nw_src) != (":" in self.nw_dst):
            raise ValueError(f"nw_src {self.nw_src} and nw_dst {self.nw_dst} are of different IP versions")
        return self


def probe_text(p: ProbeIn) -> str:
    """The ofproto/trace flow of a validated probe."""
    v6 = ":" in p.nw_src
    ips = f"ipv6_src={p.nw_src},ipv6_dst={p.nw_dst}" if v6 else f"nw_src={p.nw_src},nw_dst={p.nw_dst}"
    base = (f"{p.protocol}{'6' if v6 else ''},in_port={p.in_port},dl_src={p.dl_src.lower()},"
            f"dl_dst={p.dl_dst.lower()},{ips},nw_ttl={p.nw_ttl}")
    if p.protocol == "icmp":
        return f"{base},icmpv6_type=128" if v6 else base
    return f"{base},tp_src={p.tp_src},tp_dst={p.tp_dst}"


def verdict_of(output: str) -> str:
    """What OVS does with the packet, from ofproto/trace's `Datapath actions:` line."""
    actions = next((ln.strip().partition(":")[2].strip() for ln in output.splitlines()
                    if ln.strip().startswith("Datapath actions:")), None)
    if actions is None:
        return "unknown (no Datapath actions line)"
    if actions in ("drop", ""):
        return "drop"
    if "userspace(" in actions or "controller" in actions:
        return f"to the controller ({actions})"
    return f"forwarded ({actions})"


def cookie_filter(cookie: int) -> str:
    """A route's flows whatever the generation that installed them (pipeline's cookie layout)."""
    return f"cookie={cookie & ~GEN_MASK:#x}/{ALL_BITS & ~GEN_MASK:#x}"


@dataclass(frozen=True)
class BridgeTracer:
    """ovs-appctl and ovs-ofctl on this host's bridge, in this OVS's run dir."""

    bridge: str
    rundir: str

    @classmethod
    def of(cls, ovsdb: str, bridge: str) -> BridgeTracer:
        kind, _, path = ovsdb.partition(":")
        return cls(bridge, os.path.dirname(path) if kind == "unix" and path else DEFAULT_OVS_RUNDIR)

    def appctl_target(self) -> str:
        """The daemon's control socket: a fixed `ovs-vswitchd.ctl` where it was started with
        one (the lab), else ovs-appctl finds ovs-vswitchd.PID.ctl through the pid file."""
        fixed = os.path.join(self.rundir, "ovs-vswitchd.ctl")
        return fixed if os.path.exists(fixed) else "ovs-vswitchd"

    async def ofproto_trace(self, probe: ProbeIn) -> dict[str, Any]:
        flow = probe_text(probe)
        output = await _run(["ovs-appctl", "-t", self.appctl_target(), "ofproto/trace", self.bridge, flow],
                            self.rundir)
        return {"probe": flow, "verdict": verdict_of(output), "output": output}

    async def dump_flows(self, cookie: int) -> list[str]:
        mgmt = os.path.join(self.rundir, f"{self.bridge}.mgmt")
        output = await _run(["ovs-ofctl", "-O", "OpenFlow13", "--names", "dump-flows", f"unix:{mgmt}",
                             cookie_filter(cookie)], self.rundir)
        return [ln.strip() for ln in output.splitlines() if ln.strip() and "reply (" not in ln]


async def _run(argv: list[str], rundir: str) -> str:
    env = {**os.environ, "OVS_RUNDIR": rundir}
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, env=env)
    except OSError as e:
        raise SystemFailure(f"cannot run {argv[0]}: {e.strerror or e}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TOOL_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise SystemFailure(f"{argv[0]} took over {TOOL_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        raise SystemFailure(f"{argv[0]} failed: {err.decode(errors='replace').strip()[:300]}")
    return out.decode(errors="replace")


def caller_allowed(identity: Identity | None) -> None:
    """Least privilege: a controller's or an operator's certificate, nobody else (no host)."""
    if identity is None:
        raise HTTPException(401, "a client certificate is needed")
    if identity.role not in ALLOWED_ROLES:
        raise HTTPException(403, f"TLS: certificate of {identity.name} ({identity.role}) may not trace "
                                 "this host: only a controller or an operator")


def _caller(request: Request) -> None:
    caller_allowed(getattr(request.state, IDENTITY, None))


def create_app(tracer: Any, host: str) -> FastAPI:
    """`tracer`: a BridgeTracer (or a fake with its two coroutines)."""
    app = FastAPI(title="daolinet agent trace", description=f"Host {host}'s read-only traces.",
                  docs_url=None, redoc_url=None, openapi_url=None, dependencies=[Depends(_caller)])

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": validation_message(exc)})

    @app.exception_handler(HTTPException)
    async def refused(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"error": exc.detail})

    @app.exception_handler(SystemFailure)
    async def failed(_: Request, exc: SystemFailure) -> JSONResponse:
        return JSONResponse(status_code=500, content={"error": str(exc)})

    @app.post("/trace/ofproto")
    async def ofproto(body: ProbeIn) -> dict[str, Any]:
        return {"host": host, **await tracer.ofproto_trace(body)}

    @app.get("/trace/flows")
    async def flows(cookie: Annotated[int, Query(ge=0, lt=1 << 64)]) -> dict[str, Any]:
        return {"host": host, "cookie": f"{cookie:#x}", "flows": await tracer.dump_flows(cookie)}

    return app


def server_config(app: Any, files: TlsFiles, **where: Any) -> uvicorn.Config:
    """uvicorn for the trace listener: the host's pair, a client certificate required (mutual
    TLS), each request told its peer's verified identity (api_common.PeerIdentityProtocol)."""
    return uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                          http=PeerIdentityProtocol, ssl_certfile=files.cert, ssl_keyfile=files.key,
                          ssl_ca_certs=files.ca, ssl_cert_reqs=ssl.CERT_REQUIRED, **where)
