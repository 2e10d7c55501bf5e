"""The controller: the asyncio shell around the pure parts.  OpenFlow server
and per-switch sessions (ofserver.py, switch.py), hot-plug routing
(hotplug.py), live routes (routes.py), proactive flow sync (sync.py), the
REST API (api.py) and the process entry (main.py)."""
