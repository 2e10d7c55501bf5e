"""`daolinet rule` (issue 15) against the real controller API (test_cli_commands'
server): rules from/to groups or cidr:, allow/deny by priority, names; `rule ls` in
evaluation order; show and rm by id or name; every bad input one line on stderr,
nothing on stdout, nothing stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_cli_commands import Cli, cli, empty_config, no_labs, server

__all__ = ["cli", "empty_config", "no_labs", "server"]  # fixtures, used by name


@pytest.fixture
def groups(cli: Cli) -> Iterator[Cli]:
    """Groups front and back of tenant default, group other of tenant beta; no rules before
    or after."""
    cli("network", "create", "web", "--subnet", "10.1.0.0/24").ok()
    cli("group", "create", "front", "-m", "network:web").ok()
    cli("group", "create", "back").ok()
    cli("tenant", "create", "beta").ok()
    cli("group", "create", "other", "-t", "beta").ok()
    yield cli
    for r in cli.json("rule", "ls"):
        cli("rule", "rm", str(r["id"]), "-t", r["tenant"]).ok()
    for name, tenant in (("front", "default"), ("back", "default"), ("other", "beta")):
        cli("group", "rm", name, "-t", tenant).ok()
    cli("network", "rm", "web").ok()
    cli("tenant", "rm", "beta").ok()


def test_rules_are_created_listed_in_order_shown_and_removed(groups: Cli) -> None:
    cli = groups
    web = cli.json("rule", "create", "--from", "front", "--to", "back", "--proto", "tcp", "--port", "80")
    assert (web["a"], web["b"], web["protocol"], web["ports"], web["action"], web["priority"]) == (
        "front", "back", "tcp", "80", "allow", 100)
    out = cli("rule", "create", "--from", "front", "--to", "back", "--proto", "tcp", "--port", "80",
              "--action", "deny", "--priority", "200", "--name", "no-web").ok()
    assert out.strip().endswith(": deny tcp/80 from front to back at priority 200 (tenant default)")
    assert out.startswith("rule no-web (")
    ping = cli.json("rule", "create", "--from", "cidr:198.19.0.0/16", "--to", "back", "--proto", "icmp",
                    "--icmp-type", "8", "--priority", "0", "--name", "ping-in")
    assert (ping["a"], ping["icmp_type"], ping["priority"]) == ("cidr:198.19.0.0/16", 8, 0)
    out_rule = cli.json("rule", "create", "--from", "front", "--to", "cidr:198.19.255.1", "--action", "deny")
    assert (out_rule["b"], out_rule["protocol"]) == ("cidr:198.19.255.1/32", "")

    listed = cli.json("rule", "ls")
    assert [(r["order"], r["id"]) for r in listed] == [
        (1, listed[0]["id"]), (2, out_rule["id"]), (3, web["id"]), (4, ping["id"])]
    assert listed[0]["name"] == "no-web"
    table = cli("rule", "ls").ok()
    for word in ("order", "rule", "priority", "action", "from", "to", "what", "no-web", "ping-in",
                 "icmp type 8", "tcp/80", "cidr:198.19.255.1/32", "any"):
        assert word in table, word
    lines = [ln for ln in table.splitlines() if "default" in ln]
    assert len(lines) == 4
    for line, word in zip(lines, ("no-web", "198.19.255.1", "tcp/80", "ping-in"), strict=True):
        assert word in line, (word, line)

    assert cli.json("rule", "show", "no-web")["id"] == listed[0]["id"]
    assert cli.json("rule", "show", str(web["id"])) == web
    shown = cli("rule", "show", "ping-in").ok()
    for word in ("ping-in", "icmp type 8", "cidr:198.19.0.0/16", "priority"):
        assert word in shown, word
    assert "removed" in cli("rule", "rm", "no-web").ok()
    cli("rule", "show", "no-web").error("rule no-web of tenant default not found")
    assert cli.json("rule", "rm", "ping-in")["name"] == "ping-in"
    assert [r["id"] for r in cli.json("rule", "ls")] == [out_rule["id"], web["id"]]
    beta = cli.json("rule", "create", "--from", "other", "--to", "other", "-t", "beta", "--name", "no-web")
    assert cli.json("rule", "show", "no-web", "-t", "beta") == beta
    assert [r["tenant"] for r in cli.json("rule", "ls", "-t", "beta")] == ["beta"]


def test_help_names_the_options(cli: Cli) -> None:
    out = cli("rule", "create", "--help").ok()
    for word in ("--from", "--to", "cidr:NETWORK", "--proto", "--port", "--icmp-type", "--action",
                 "--priority", "--name", "--json"):
        assert word in out, word
    assert "first-match" in cli("rule", "--help").ok()


BASE = ("rule", "create", "--from", "front", "--to", "back")


@pytest.mark.parametrize(("args", "words"), [
    (("--to", "cidr:10.0.0.1/24"), ("is not a network", "cidr:10.0.0.0/24")),
    (("--to", "cidr:banana"), ("'cidr:banana' is not a network",)),
    (("--from", "cidr:10.0.0.0/8", "--to", "cidr:198.19.0.0/16"), ("one side must be a group",)),
    (("--proto", "tcp", "--port", "70000"), ("port 70000", "1 to 65535")),
    (("--proto", "tcp", "--port", "0"), ("port 0",)),
    (("--proto", "tcp", "--port", "90-80"), ("'90-80' is empty",)),
    (("--proto", "icmp", "--port", "80"), ("need protocol tcp or udp, not icmp",)),
    (("--proto", "tcp", "--port", "80", "--icmp-type", "8"), ("icmp type 8 needs protocol icmp, not tcp",)),
    (("--proto", "icmp", "--icmp-type", "256"), ("icmp type 256",)),
    (("--proto", "icmp", "--icmp-type", "echo"), ("--icmp-type",)),
    (("--proto", "gre"), ("protocol 'gre'",)),
    (("--action", "drop"), ("action 'drop'", "allow, deny")),
    (("--priority", "1001"), ("priority 1001", "0 and 1000")),
    (("--priority", "high"), ("--priority",)),
    (("--name", "42"), ("all digits",)),
    (("--name", "Web Rule"), ("invalid rule name 'Web Rule'",)),
    (("--to", "other"), ("group other of tenant default not found",)),  # tenant beta's
    (("--from", "nosuch"), ("group nosuch of tenant default not found",)),
    (("-t", "nobody"), ("tenant nobody not found",)),
])
def test_bad_rules_are_one_line_and_store_nothing(groups: Cli, args: tuple[str, ...],
                                                  words: tuple[str, ...]) -> None:
    before = groups.json("rule", "ls")
    for argv in (BASE + args, (*BASE, *args, "--json")):
        groups(*argv).error(*words)
    assert groups.json("rule", "ls") == before


def test_the_same_rule_twice_and_unknown_rules(groups: Cli) -> None:
    cli = groups
    r = cli.json(*BASE, "--proto", "udp", "--port", "53", "--name", "dns")
    before = cli.json("rule", "ls")
    cli(*BASE, "--proto", "udp", "--port", "053").error("rule dns of tenant default already allows udp/53")
    cli(*BASE, "--name", "dns").error(f"rule name dns of tenant default is already taken (rule {r['id']})")
    for verb in ("show", "rm"):
        cli("rule", verb, "nosuch").error("rule nosuch of tenant default not found")
        cli("rule", verb, "999999").error("rule 999999 of tenant default not found")
        cli("rule", verb, "a/b").error("rule a/b of tenant default not found")
        cli("rule", verb, "dns", "-t", "beta").error("rule dns of tenant beta not found")
    assert cli.json("rule", "ls") == before
