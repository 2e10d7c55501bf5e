"""Which switches a controller claims: fair share, free switches only, letting go of lost ones."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daolinet.controller.mastership import Plan, fair_share, plan


def test_fair_share_rounds_up() -> None:
    assert [fair_share(n, 3) for n in (0, 1, 3, 4, 7)] == [0, 1, 1, 2, 3]
    assert fair_share(5, 0) == 5


def test_a_lone_controller_claims_every_switch() -> None:
    assert set(plan("a", [1, 2, 3], {}, ["a"]).claim) == {1, 2, 3}


def test_a_controller_claims_only_up_to_its_share() -> None:
    p = plan("a", [1, 2, 3, 4], {1: "b"}, ["a", "b"])
    assert len(p.claim) == 2 and 1 not in p.claim and p.release == ()


def test_a_controller_at_its_share_claims_nothing() -> None:
    assert plan("a", [1, 2, 3, 4], {1: "a", 2: "a"}, ["a", "b"]) == Plan((), ())


def test_a_dead_masters_switch_is_free_again() -> None:
    # b's lease expired: etcd deleted its keys, and b is no longer listed alive
    assert plan("a", [1, 2], {1: "a"}, ["a"]).claim == (2,)


def test_a_switch_no_longer_connected_is_let_go() -> None:
    assert plan("a", [2], {1: "a", 2: "a"}, ["a"]) == Plan((), (1,))


def test_controllers_prefer_different_switches() -> None:
    firsts = {plan(me, range(1, 31), {}, ["a", "b", "c"]).claim[0] for me in ("a", "b", "c")}
    assert len(firsts) == 3


@given(st.integers(1, 12), st.integers(1, 4), st.randoms())
def test_claiming_in_turns_spreads_every_switch_evenly(switches: int, n: int, rnd: object) -> None:
    ids = [f"c{i}" for i in range(n)]
    owners: dict[int, str] = {}
    for _ in range(switches + n):  # rounds; a claim wins only if the switch is still free
        order = list(ids)
        rnd.shuffle(order)  # type: ignore[attr-defined]
        for me in order:
            for dpid in plan(me, range(switches), owners, ids).claim:
                owners.setdefault(dpid, me)
    assert set(owners) == set(range(switches))
    counts = [sum(1 for o in owners.values() if o == me) for me in ids]
    assert max(counts) <= fair_share(switches, n)
