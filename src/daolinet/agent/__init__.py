"""The host agent: owns the host's OVS bridge and attaches containers to it."""
