"""OpenFlow 1.3 role requests through the sans-IO channel, against the fake switch."""

from __future__ import annotations

import pytest

from daolinet.flows import render
from daolinet.flows.spec import FlowSpec, Match
from daolinet.ofp import channel as ch
from daolinet.ofp.codec import ProtocolError, ofp, parser
from daolinet.pipeline import Table
from daolinet.testing.fakeswitch import FakeSwitch, pump


def ready_pair() -> tuple[ch.Channel, FakeSwitch]:
    channel, switch = ch.Channel(), FakeSwitch(0xA1, [(1, "p1", "02:00:00:00:00:01")])
    events = pump(channel, switch)
    assert any(isinstance(e, ch.SwitchReady) for e in events)
    return channel, switch


def test_master_request_is_answered_with_the_role_and_generation() -> None:
    channel, switch = ready_pair()
    xid = channel.request_role(ch.ROLE_MASTER, 7)
    events = pump(channel, switch)
    assert events == [ch.RoleReply(xid, ofp.OFPCR_ROLE_MASTER, 7)]
    assert switch.role == ofp.OFPCR_ROLE_MASTER and switch.generation_id == 7
    (req,) = switch.of_type(parser.OFPRoleRequest)
    assert (req.role, req.generation_id) == (ofp.OFPCR_ROLE_MASTER, 7)


def test_a_stale_generation_is_refused() -> None:
    channel, switch = ready_pair()
    channel.request_role(ch.ROLE_MASTER, 9)
    pump(channel, switch)
    xid = channel.request_role(ch.ROLE_MASTER, 8)  # an older master's claim
    (err,) = pump(channel, switch)
    assert isinstance(err, ch.SwitchError) and err.xid == xid
    assert (err.type, err.code) == (ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE)
    assert "OFPT_ROLE_REQUEST" in err.describe()
    assert switch.generation_id == 9


def test_generations_compare_across_the_64_bit_wrap() -> None:
    channel, switch = ready_pair()
    channel.request_role(ch.ROLE_SLAVE, (1 << 64) - 1)
    pump(channel, switch)
    xid = channel.request_role(ch.ROLE_MASTER, (1 << 64) + 1)  # masked to 1: newer across the wrap
    assert pump(channel, switch) == [ch.RoleReply(xid, ofp.OFPCR_ROLE_MASTER, 1)]


def test_a_slave_may_not_modify_flows() -> None:
    channel, switch = ready_pair()
    channel.request_role(ch.ROLE_SLAVE, 1)
    pump(channel, switch)
    xid = channel.send(render.flow_add(FlowSpec(table=Table.CLASSIFY, priority=1, match=Match.of(in_port=1))))
    (err,) = pump(channel, switch)
    assert isinstance(err, ch.SwitchError) and err.xid == xid
    assert (err.type, err.code) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)


def test_only_master_or_slave_can_be_requested() -> None:
    channel, _ = ready_pair()
    with pytest.raises(ProtocolError):
        channel.request_role(ofp.OFPCR_ROLE_EQUAL, 1)
