"""Flows as data: FlowSpec and its actions (spec.py), what to install for a
host, a port or a route (proactive.py, route.py), what to send for a
PacketIn's decision (respond.py), and rendering to os-ken messages (render.py).
Everything but render.py is pure and os-ken-free."""
