"""The live map served at /ui: its feed (feed.py) and its page (static/: vanilla
JavaScript and SVG written here; no third-party script, no CDN)."""
