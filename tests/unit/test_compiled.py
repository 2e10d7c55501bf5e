"""The hot path's modules compiled by mypyc (`make compile`, optional) behave as their
Python source: with them built, every other unit test runs against them, and this one
holds each to its source loaded as plain Python; without them it has nothing to check.
A compiled module older than its source would hide an edit: that fails here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daolinet.flows.route import RouteEnds
from daolinet.ofp.codec import Encoded
from daolinet.testing.strategies import routes

SRC = Path(__file__).resolve().parents[2] / "src"
MODULES = ["daolinet.decide.packet", "daolinet.decide.direct", "daolinet.flows.wire",
           "daolinet.flows.route_wire", "daolinet.flows.respond"]  # the Makefile's COMPILED


def compiled(name: str) -> Path | None:
    source = SRC / (name.replace(".", "/") + ".py")
    found = sorted(source.parent.glob(source.stem + ".*.so"))
    return found[0] if found else None


def pure(name: str) -> ModuleType:
    """The module from its .py, as Python, under another name."""
    source = SRC / (name.replace(".", "/") + ".py")
    spec = importlib.util.spec_from_file_location(name + "_pure", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


BUILT = [name for name in MODULES if compiled(name)]
needs_build = pytest.mark.skipif(not BUILT, reason="not compiled (make compile)")


@pytest.mark.parametrize("name", MODULES)
def test_a_compiled_module_is_not_older_than_its_source(name: str) -> None:
    so = compiled(name)
    if so is None:
        pytest.skip("not compiled")
    source = SRC / (name.replace(".", "/") + ".py")
    assert so.stat().st_mtime >= source.stat().st_mtime, f"{so.name} is stale: run make compile"
    assert importlib.import_module(name).__file__ == str(so)  # what runs is the compiled one


# Ethernet, the first 8 bytes of an IPv4 header, then a TTL, a protocol and whatever follows.
HEAD = bytes.fromhex("020000000001" "020000000002" "0800" "4500003c00004000")
frames = st.builds(lambda ttl, proto, rest: HEAD + bytes([ttl, proto]) + rest,
                   st.integers(0, 255), st.sampled_from([1, 6, 17]), st.binary(max_size=60))


@needs_build
@settings(max_examples=300, deadline=None)
@given(frames, st.integers(0, 0xFFFF))
def test_compiled_parse_and_direct_delivery_equal_python(frame: bytes, in_port: int) -> None:
    from daolinet.decide import direct, packet

    py_packet, py_direct = pure("daolinet.decide.packet"), pure("daolinet.decide.direct")
    assert tuple(packet.parse(1, in_port, 10, 0, frame)) == tuple(py_packet.parse(1, in_port, 10, 0, frame))
    src, dst = b"\x02" * 6, b"\x04" * 6
    assert direct.delivered(frame, src, dst) == py_direct.delivered(frame, src, dst)


@needs_build
@settings(max_examples=300, deadline=None)
@given(routes(), st.integers(0, 0xFFFF))
def test_compiled_route_bytes_equal_python(ends: RouteEnds, idle: int) -> None:
    from daolinet.flows import route_wire

    py_route_wire = pure("daolinet.flows.route_wire")
    got, want = route_wire.route_bytes(ends, idle), py_route_wire.route_bytes(ends, idle)
    assert got.cookie == want.cookie
    def data(steps: tuple[tuple[int, tuple[Encoded, ...]], ...]) -> list[tuple[int, list[bytes]]]:
        return [(d, [e.data for e in f]) for d, f in steps]

    assert data(got.steps) == data(want.steps)
