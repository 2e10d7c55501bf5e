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


def test_a_controller_two_ahead_hands_one_switch_a_round_to_a_newcomer() -> None:
    owners = {d: "a" for d in range(1, 5)}  # a held all four; b just joined
    for _ in range(2):
        p = plan("a", range(1, 5), owners, ["a", "b"])
        assert p.claim == () and len(p.release) == 1
        del owners[p.release[0]]
        assert plan("b", range(1, 5), owners, ["a", "b"]).claim == p.release  # b takes it
        owners[p.release[0]] = "b"
    assert plan("a", range(1, 5), owners, ["a", "b"]) == Plan((), ())  # 2 and 2: settled
    assert plan("b", range(1, 5), owners, ["a", "b"]) == Plan((), ())


def test_one_ahead_is_as_even_as_it_gets() -> None:
    owners = {1: "a", 2: "a", 3: "b"}
    assert plan("a", range(1, 4), owners, ["a", "b"]) == Plan((), ())


def test_a_stale_free_switch_is_taken_beyond_the_share_and_never_handed_over() -> None:
    owners = {1: "a", 2: "a"}  # share 2 with b alive, but b does not reach switch 3
    assert plan("a", [1, 2, 3], owners, ["a", "b"]).claim == ()
    assert plan("a", [1, 2, 3], owners, ["a", "b"], stale=[3]).claim == (3,)
    owners[3] = "a"
    p = plan("a", [1, 2, 3], owners, ["a", "b"], sticky=[3])
    assert len(p.release) == 1 and 3 not in p.release  # 3 against 0: a movable one goes


@given(st.integers(1, 12), st.integers(1, 4), st.integers(0, 3), st.randoms())
def test_joining_controllers_end_evenly_spread(switches: int, n: int, joiners: int, rnd: object) -> None:
    """Controllers claim, then more join: rounds later every switch has one master and
    nobody holds more than the fair share."""
    ids = [f"c{i}" for i in range(n)]
    owners: dict[int, str] = {}
    for phase in (ids, ids + [f"j{i}" for i in range(joiners)]):
        for _ in range(2 * switches + 2 * len(phase)):
            order = list(phase)
            rnd.shuffle(order)  # type: ignore[attr-defined]
            for me in order:
                p = plan(me, range(switches), owners, phase)
                for dpid in p.release:
                    owners.pop(dpid, None)
                for dpid in p.claim:
                    owners.setdefault(dpid, me)
        assert set(owners) == set(range(switches))
        counts = [sum(1 for o in owners.values() if o == me) for me in phase]
        assert max(counts) <= fair_share(switches, len(phase))
        assert max(counts) - min(counts) <= 1
