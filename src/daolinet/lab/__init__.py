"""The local multi-host lab: container hosts as network namespaces, each with a
private ovsdb-server and ovs-vswitchd (userspace datapath), joined by an
underlay fabric.  Used by the demo, the integration tests and the benchmarks.

    lab = Lab.up("demo", hosts=3)
    lab.add_container("web", host="h1")
    lab.exec("web", ["ping", "-c1", "198.18.0.2"])
    Lab.down("demo")
"""

from daolinet.lab.cluster import Lab, LabContainer, LabHost, list_labs

__all__ = ["Lab", "LabContainer", "LabHost", "list_labs"]
