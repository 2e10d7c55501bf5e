"""Flows as data: FlowSpec and its actions (spec.py), what to install for a
host, a port or a route (base.py, route.py), and rendering to os-ken
messages (render.py).  Everything but render.py is pure and os-ken-free."""
