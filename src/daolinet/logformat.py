"""How the daemons log: `--log-format text` (a line for people) or `json` (one JSON
object a line for log shippers), through the stdlib's logging.

A JSON line: {"time": "2026-12-06T03:24:00.123Z", "level": "info", "logger": "daolinet.agent",
"message": "..."}, plus "exception" when there is one, plus any structured fields the
call passed as `extra={"fields": {...}}` at the top level (the policy log's tenant,
decision, src, dst, proto, sport, dport, rule, reason: controller/policy_log.py), and
`extra={"event": "..."}` replaces the message (the policy log's line is its fields).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT = "%(asctime)s %(name)s %(levelname)s %(message)s"
RESERVED = ("time", "level", "logger", "message", "exception")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": getattr(record, "event", None) or record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in RESERVED})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["exception"] = self.formatStack(record.stack_info)
        return json.dumps(out, separators=(",", ":"), default=str)


def setup(level: str, fmt: str = "text") -> None:
    """The root logger's handler (stderr) for a daemon: `fmt` text or json."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python's warnings too, one event a line like the rest
