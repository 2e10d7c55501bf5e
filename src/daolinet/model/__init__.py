"""Intent: tenants, networks, hosts and endpoints as frozen dataclasses, and
the in-memory View the controller decides from.  No I/O."""

from daolinet.model.objects import (
    ControllerRecord,
    Endpoint,
    Group,
    Host,
    Network,
    Portmap,
    Rule,
    Tenant,
    Token,
)
from daolinet.model.view import View

__all__ = ["ControllerRecord", "Endpoint", "Group", "Host", "Network", "Portmap", "Rule", "Tenant", "Token",
           "View"]
