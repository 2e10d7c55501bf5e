"""daolinet: a software-defined network for containers.

Every container host runs Open vSwitch as a virtual router with no routing
protocol; an OpenFlow controller plugs a route for a connection when its first
packet appears and lets it idle out. See README.md and docs/.
"""

__version__ = "0.1.0"
