"""How the CLI finds the controller's API: $DAOLINET_API, else the lab named
by $DAOLINET_LAB, else the only running lab."""

from __future__ import annotations

import os

from daolinet.errors import NotFound
from daolinet.lab import cluster
from daolinet.lab.client import LabClient


def api_url() -> str:
    url = os.environ.get("DAOLINET_API")
    if url:
        return url
    name = os.environ.get("DAOLINET_LAB")
    if name:
        return cluster.Lab.open(name).api_url
    running = [n for n in cluster.list_labs() if _has_api(n)]
    if len(running) == 1:
        return cluster.Lab.open(running[0]).api_url
    if not running:
        raise NotFound("no controller API: set DAOLINET_API=http://HOST:PORT (or start a lab)")
    raise NotFound(f"several labs run ({', '.join(running)}): set DAOLINET_LAB or DAOLINET_API")


def _has_api(name: str) -> bool:
    try:
        return cluster.Lab.open(name).has_controller
    except Exception:
        return False


def api_token() -> str | None:
    """$DAOLINET_TOKEN, else the running lab's admin token."""
    token = os.environ.get("DAOLINET_TOKEN")
    if token:
        return token
    if os.environ.get("DAOLINET_API"):
        return None
    name = os.environ.get("DAOLINET_LAB") or next(
        (n for n in cluster.list_labs() if _has_api(n)), None)
    return cluster.Lab.open(name).admin_token if name else None


def api_client() -> LabClient:
    return LabClient(api_url(), token=api_token())
