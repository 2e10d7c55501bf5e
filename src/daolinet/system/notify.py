"""systemd's readiness protocol for the daemons' `Type=notify` units.

READY=1 once a daemon serves, STOPPING=1 when it begins to shut down, sent to
$NOTIFY_SOCKET through sdnotify.  Without $NOTIFY_SOCKET (the lab, a shell)
nothing is sent; a socket that refuses the message is logged, never fatal:
the daemon serves either way, and systemd's start timeout reports the rest."""

from __future__ import annotations

import logging
import os

import sdnotify

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1"); True when it went out."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return False
    notifier = None
    try:
        notifier = sdnotify.SystemdNotifier(debug=True)
        notifier.notify(state)
    except OSError as e:
        log.warning("cannot tell systemd %s through %s: %s", state, os.environ["NOTIFY_SOCKET"], e)
        return False
    finally:
        if notifier is not None and notifier.socket is not None:
            notifier.socket.close()
    return True
