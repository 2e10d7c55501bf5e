"""Sans-IO OpenFlow 1.3: framing and codec over os-ken (codec.py) and the
per-switch channel state machine (channel.py).  No sockets, no clocks."""
