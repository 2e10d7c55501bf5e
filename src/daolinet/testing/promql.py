"""The Grafana dashboard's queries and the metric names they read (tests check them
against a live /metrics output)."""

from __future__ import annotations

import json
import os
import re

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "..", "contrib", "grafana", "daolinet.json")
WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset",
         "bool", "inf", "nan"}
PAIRS = {")": "(", "]": "[", "}": "{"}


def metrics_of(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: parsed enough to tell them from
    functions, keywords, label names and label values; ValueError if unbalanced."""
    stack: list[str] = []
    for ch in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in PAIRS and (not stack or stack.pop() != PAIRS[ch]):
            raise ValueError(f"unbalanced {ch!r} in {expr}")
    if stack:
        raise ValueError(f"unclosed {stack[-1]!r} in {expr}")
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    bare = re.sub(r"\{[^}]*\}", "", bare)  # matchers
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # ranges
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)  # grouping labels
    found = set()
    for m in re.finditer(r"(?<![0-9.])[A-Za-z_:][A-Za-z0-9_:]*", bare):
        word = m.group(0)
        if word in WORDS or bare[m.end():].lstrip().startswith("("):
            continue  # a keyword, or a function
        found.add(word)
    return found


def queries(path: str = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel's every target."""
    with open(path) as f:
        dash = json.load(f)
    return [(panel["title"], target["expr"])
            for panel in dash["panels"] for target in panel.get("targets", [])]


def exposed(body: str) -> set[str]:
    """Every name a /metrics text exposes, families without samples too (from # TYPE)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    out = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)", body, re.M):
        out.update([family, *(family + suffix for suffix in suffixes.get(kind, ()))])
    return out
