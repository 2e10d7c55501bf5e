"""Thin wrappers over the system parts a host has: processes, netlink
(pyroute2) and OVSDB (ovsdbapp).  The lab and the agent both stand on them;
nothing here decides anything."""
