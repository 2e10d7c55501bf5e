"""`daolinet-cni`: the CNI plugin binary, a thin shim.

It reads the CNI environment and the network configuration on stdin, answers
VERSION itself, and posts everything else to the host's agent over its
root-only unix socket (`agentSocket` in the configuration, default
/run/daolinet/agent.sock); the agent does the work and returns the result
or a CNI error, which the shim prints.  An agent that cannot be reached is
"try again later" (code 11), or "not available" (50) for STATUS.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from daolinet.cni import spec

Post = Callable[[spec.CniRequest, dict[str, Any]], dict[str, Any]]


def post(req: spec.CniRequest, body: dict[str, Any]) -> dict[str, Any]:
    transport = httpx.HTTPTransport(uds=req.agent_socket)
    try:
        with httpx.Client(base_url="http://agent", transport=transport, timeout=120) as http:
            resp = http.post("/cni", json=body)
    except httpx.HTTPError as e:
        code = spec.NOT_AVAILABLE if req.command == "STATUS" else spec.TRY_AGAIN
        raise spec.CniError(code, f"the daolinet agent at {req.agent_socket} is unreachable", str(e)) from e
    if resp.status_code != 200:
        raise spec.CniError(spec.IO_FAILURE, f"the daolinet agent answered HTTP {resp.status_code}",
                            resp.text[:500])
    return dict(resp.json())


def run(env: Mapping[str, str], stdin: bytes, send: Post = post) -> tuple[int, dict[str, Any] | None]:
    """(exit status, JSON to print) for one invocation."""
    version = spec.version_of(stdin)
    try:
        req = spec.parse(env, stdin)
        if req.command == "VERSION":
            return 0, spec.version_result(req.version)
        cni_env = {k: v for k, v in env.items() if k.startswith("CNI_")}
        reply = send(req, {"env": cni_env, "config": req.config})
    except spec.CniError as e:
        return 1, e.to_json(version)
    if reply.get("error"):
        return 1, dict(reply["error"])
    return 0, reply.get("result")


def main() -> None:
    status, out = run(os.environ, sys.stdin.buffer.read())
    if out is not None:
        sys.stdout.write(json.dumps(out) + "\n")
    sys.exit(status)


if __name__ == "__main__":
    main()
