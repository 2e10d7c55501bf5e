"""Where a lab's dockerds leave cgroups, on a unified (v2) hierarchy and on v1's or the
hybrid layout (lab/docker.py): a temp dir stands in for /sys/fs/cgroup."""

from __future__ import annotations

from pathlib import Path

from daolinet.lab import docker


def make(root: Path, *dirs: str) -> None:
    for d in dirs:
        (root / d).mkdir(parents=True)


def test_unified_v2(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    make(tmp_path, "dl-lab1-h1/abc", "dl-lab1-h2", "dl-lab10-h1", "system.slice/dl-lab1-h9")
    assert docker.unified(str(tmp_path))
    assert docker.cgroup_dirs("lab1", str(tmp_path)) == [str(tmp_path / "dl-lab1-h1"),
                                                          str(tmp_path / "dl-lab1-h2")]
    docker.remove_cgroups("lab1", str(tmp_path))
    assert docker.cgroup_dirs("lab1", str(tmp_path)) == []
    assert (tmp_path / "dl-lab10-h1").is_dir() and (tmp_path / "system.slice" / "dl-lab1-h9").is_dir()


def test_v1_and_hybrid(tmp_path: Path) -> None:
    make(tmp_path, "memory/dl-lab1-h1/abc/def", "pids/dl-lab1-h1", "unified/dl-lab1-h2", "cpu/dl-lab2-h1",
         "memory/system.slice")
    assert not docker.unified(str(tmp_path))
    assert docker.cgroup_dirs("lab1", str(tmp_path)) == [str(tmp_path / p) for p in (
        "memory/dl-lab1-h1", "pids/dl-lab1-h1", "unified/dl-lab1-h2")]
    docker.remove_cgroups("lab1", str(tmp_path))
    assert docker.cgroup_dirs("lab1", str(tmp_path)) == []
    assert (tmp_path / "cpu" / "dl-lab2-h1").is_dir() and (tmp_path / "memory").is_dir()


def test_this_machine_is_one_or_the_other() -> None:
    # whichever it is, the layouts' globs never see a v1 controller dir as a lab's cgroup
    assert isinstance(docker.unified(), bool)
    assert docker.cgroup_dirs("nolabhere") == []
