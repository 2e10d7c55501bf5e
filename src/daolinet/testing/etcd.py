"""The tests' name for the etcd launcher, which lives in the lab (daolinet.lab.etcd_cluster)
because `lab up --store etcd` starts the same cluster; testing may import lab, never the reverse."""

from __future__ import annotations

from daolinet.lab.etcd_cluster import HOST, EtcdCluster, EtcdMissing, Member, etcd_binary

__all__ = ["HOST", "EtcdCluster", "EtcdMissing", "Member", "etcd_binary"]
