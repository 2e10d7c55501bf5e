"""The lab's distributed control plane: a 3-member etcd cluster under the lab's
run dir (so `lab down` sweeps its processes and data with everything else) for
several controllers (`lab up --controllers 3 --store etcd`).

The members are started by the launcher the tests share (etcd_cluster.py: free ports,
health checks, a CA of the cluster's own and certificates), detached like the
lab's other daemons, inside the lab's control namespace on the underlay when
given one; the lab records their pids, the store URL and the client pair its
controllers reach etcd with (TLS and client certificates, unless `--insecure`).
"""

from __future__ import annotations

import os

from daolinet.errors import InvalidInput
from daolinet.lab import plan
from daolinet.lab.etcd_cluster import HOST, EtcdCluster
from daolinet.security.tls import TlsFiles

ETCD_MEMBERS = 3
STORES = ("sqlite", "etcd")
ETCD_ARGS = ["--max-txn-ops", "4096"]  # a group or a tenant change may touch many keys


def check(controllers: int, store: str) -> None:
    if store not in STORES:
        raise InvalidInput(f"store {store!r} must be one of {', '.join(STORES)}")
    if not 1 <= controllers <= 9:
        raise InvalidInput(f"controllers must be 1..9, not {controllers}")
    if controllers > 1 and store != "etcd":
        raise InvalidInput("several controllers need a shared store: add --store etcd")


def start_etcd(lab: str, members: int = ETCD_MEMBERS, *, netns: str | None = None, host: str = HOST,
               tls: bool = True) -> tuple[str, dict[str, int], TlsFiles | None]:
    """Start the lab's etcd cluster on `host` in `netns`: its store URL, the members' pids
    by name and the client pair for controllers (None without `tls`)."""
    base = os.path.join(plan.lab_dir(lab), "etcd")
    os.makedirs(base, exist_ok=True)
    cluster = EtcdCluster(base, size=members, args=ETCD_ARGS, tls=tls, host=host, netns=netns).start()
    pids = {f"etcd/{m.name}": m.proc.pid for m in cluster.members if m.proc is not None}
    return cluster.url(), pids, cluster.client_tls
