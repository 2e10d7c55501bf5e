"""The lab containerd's files (lab/containerd.py), without running it: its config, the CNI
configuration daolinet-cni is given, the image archive, and where its containers' cgroups go."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tomllib
from pathlib import Path

from daolinet.cni import spec
from daolinet.lab import containerd, daemons, docker, plan

HOST = plan.plan_hosts("lab1", 2)[1]


def test_config_keeps_every_path_under_the_host_run_dir() -> None:
    p = containerd.ContainerdPaths(HOST)
    config = tomllib.loads(containerd.config_toml(p))
    assert config["version"] == 2 and config["grpc"]["address"] == p.sock
    assert (config["root"], config["state"]) == (p.root, p.state)
    assert all(path.startswith(HOST.rundir() + "/") for path in (p.root, p.state, p.sock, p.net_d, p.bin))
    assert "io.containerd.grpc.v1.cri" in config["disabled_plugins"]
    assert config["ttrpc"]["address"] == config["debug"]["address"] == config["metrics"]["address"] == ""


def test_the_cni_configuration_is_one_daolinet_cni_accepts() -> None:
    conf = containerd.cni_conf("net1", daemons.agent_sock(HOST))
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "daolinet-lab-c1", "CNI_IFNAME": "eth0",
           "CNI_NETNS": "/proc/1/ns/net"}
    req = spec.parse(env, json.dumps(conf).encode())
    assert (req.network, req.agent_socket) == ("net1", daemons.agent_sock(HOST))
    assert conf["type"] == spec.PLUGIN_TYPE  # the name start() links daolinet-cni under


def test_image_archive_is_a_docker_save_of_the_rootfs() -> None:
    rootfs = docker.busybox_rootfs()
    with tarfile.open(fileobj=io.BytesIO(containerd.image_archive(rootfs, "amd64"))) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        (layer_name,) = manifest["Layers"]
        layer = tar.extractfile(layer_name).read()  # type: ignore[union-attr]
        config_bytes = tar.extractfile(manifest["Config"]).read()  # type: ignore[union-attr]
    config = json.loads(config_bytes)
    assert manifest["RepoTags"] == ["busybox:latest"] and layer == rootfs
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(rootfs).hexdigest()}"]
    assert manifest["Config"] == f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert containerd.go_arch("x86_64") == "amd64" and containerd.go_arch("aarch64") == "arm64"


def test_container_cgroups_are_found_by_the_lab_teardown(tmp_path: Path) -> None:
    path = containerd.cgroup(HOST, "c1").lstrip("/")
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    (v2 / path).mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    for controller in ("memory", "pids", "unified"):
        (v1 / controller / path).mkdir(parents=True)
    for root in (v2, v1):
        assert docker.cgroup_dirs("lab1", str(root)) != []
        docker.remove_cgroups("lab1", str(root))
        assert docker.cgroup_dirs("lab1", str(root)) == []
    assert containerd.cgroup(HOST, "c1") == "/dl-lab1-h2-ctr/c1"
