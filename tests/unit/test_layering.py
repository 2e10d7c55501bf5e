"""The arrows between daolinet's packages, read statically (ast) from every module
under src/daolinet, so a wrong import fails here before anyone runs it:

- the agent never imports the controller (what both APIs share is daolinet.api_common), nor
  the controller the agent, the lab or testing;
- the lab never imports testing (testing may import the lab: its etcd launcher and probes);
- the pure packages, which decide from data and return data (model, decide, flows, pipeline,
  ofp, and the respond step wherever it lives: flows/ or daolinet/respond.py), import no
  I/O package of ours (controller, agent, lab, testing, store, cli, system, cni, security,
  api_common, daemon_settings) and no library whose point is I/O: asyncio, subprocess,
  threading, selectors, ssl, http, urllib, httpx, sqlite3, aetcd, pyroute2, ovsdbapp,
  fastapi, uvicorn; nor dnspython's I/O modules dns.query, dns.asyncquery, dns.resolver and
  dns.asyncresolver (its message, name and rdata modules are pure: decide/dnswire.py uses
  them).  (os, time and logging are allowed: a pure function may log, and a caller passes
  `now` in; catching a clock read is review's job, not this test's.)

`socket` is the one exception: its address converters (inet_aton, inet_ntoa, …) are
pure and the fast parsers use them; a pure module may use those, never a socket.
Imports inside functions count as much as those at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "daolinet"

PURE = {"model", "decide", "flows", "pipeline", "ofp", "respond"}
OUR_IO = {"controller", "agent", "lab", "testing", "store", "cli", "system", "cni", "security",
          "api_common", "daemon_settings"}
IO_LIBRARIES = {"asyncio", "subprocess", "threading", "selectors", "ssl", "http", "urllib", "httpx",
                "sqlite3", "aetcd", "pyroute2", "ovsdbapp", "fastapi", "uvicorn"}
DNS_IO_MODULES = {"dns.query", "dns.asyncquery", "dns.resolver", "dns.asyncresolver"}
SOCKET_PURE_NAMES = {"inet_aton", "inet_ntoa", "inet_pton", "inet_ntop", "AF_INET", "AF_INET6",
                     "htons", "ntohs", "htonl", "ntohl"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. daolinet.agent.api
    target: str  # the imported module, absolute, e.g. daolinet.controller.api
    line: int

    @property
    def where(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """The first-level package under daolinet ('agent' for daolinet.agent.api; 'errors'
    for the top-level module daolinet.errors)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path, module: str = "") -> Iterator[Import]:
    """The imports of a module under src (or of any file, named `module`)."""
    module = module or module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = absolute(module, path.name == "__init__.py", node)
            yield Import(module, target, node.lineno)
            for alias in node.names:  # `from daolinet import controller` imports a package too
                yield Import(module, f"{target}.{alias.name}", node.lineno)


def socket_uses(path: Path) -> Iterator[str]:
    """`socket.X` attributes a module uses, and names it takes `from socket import`."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "socket":
            yield node.attr
        elif isinstance(node, ast.ImportFrom) and node.module == "socket" and not node.level:
            yield from (alias.name for alias in node.names)


MODULES = sorted(ROOT.rglob("*.py"))
IMPORTS = [imp for path in MODULES for imp in imports_of(path)]


def ours(target: str) -> str | None:
    """The first-level package of one of our modules, or None for a foreign import."""
    return package_of(target) if target.startswith("daolinet.") else None


def test_every_module_parses_and_the_walk_sees_imports() -> None:
    assert len(MODULES) > 100
    assert any(imp.module == "daolinet.agent.api" and imp.target == "daolinet.api_common" for imp in IMPORTS)


def test_the_agent_does_not_import_the_controller() -> None:
    wrong = [imp.where for imp in IMPORTS
             if package_of(imp.module) == "agent" and ours(imp.target) == "controller"]
    assert wrong == []


def test_the_controller_imports_no_agent_lab_or_testing() -> None:
    wrong = [imp.where for imp in IMPORTS
             if package_of(imp.module) == "controller" and ours(imp.target) in {"agent", "lab", "testing"}]
    assert wrong == []


def test_the_lab_does_not_import_testing() -> None:
    wrong = [imp.where for imp in IMPORTS
             if package_of(imp.module) == "lab" and ours(imp.target) == "testing"]
    assert wrong == []


def test_pure_packages_import_no_io_package_of_ours() -> None:
    wrong = [imp.where for imp in IMPORTS
             if package_of(imp.module) in PURE and ours(imp.target) in OUR_IO]
    assert wrong == []


def test_pure_packages_import_no_io_library() -> None:
    wrong = [imp.where for imp in IMPORTS
             if package_of(imp.module) in PURE and imp.target.split(".")[0] in IO_LIBRARIES]
    assert wrong == []


def is_dns_io(target: str) -> bool:
    return any(target == name or target.startswith(f"{name}.") for name in DNS_IO_MODULES)


def test_pure_packages_import_no_dns_io_module() -> None:
    wrong = [imp.where for imp in IMPORTS if package_of(imp.module) in PURE and is_dns_io(imp.target)]
    assert wrong == []


def test_dns_io_modules_are_told_apart_from_pure_ones(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import dns.message\nimport dns.resolver\nfrom dns import query, rcode\n")
    caught = sorted(imp.target for imp in imports_of(probe, "daolinet.decide.probe") if is_dns_io(imp.target))
    assert caught == ["dns.query", "dns.resolver"]


@pytest.mark.parametrize("path", [p for p in MODULES if package_of(module_name(p)) in PURE],
                         ids=lambda p: module_name(p))
def test_pure_modules_use_socket_only_to_convert_addresses(path: Path) -> None:
    assert set(socket_uses(path)) <= SOCKET_PURE_NAMES


def test_the_walk_catches_a_wrong_arrow(tmp_path: Path) -> None:
    """The checks above would see a relative import from the agent into the controller."""
    fake = SRC / "daolinet" / "agent" / "api.py"
    tree = ast.parse("from ..controller import app\nimport socket\nsocket.socket()\n")
    node = tree.body[0]
    assert isinstance(node, ast.ImportFrom)
    assert absolute(module_name(fake), False, node) == "daolinet.controller"
    probe = tmp_path / "probe.py"
    probe.write_text("import socket\nsocket.socket()\n")
    assert "socket" in set(socket_uses(probe)) - SOCKET_PURE_NAMES
