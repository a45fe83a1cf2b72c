"""bench/__main__.py: the host as the run found it. bpftool and iproute2, two of the references
the benchmarks run, mount bpffs at /sys/fs/bpf to pin (iproute2 over a bind mount of the
directory onto itself); a run takes off what they mounted, when they left nothing in it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.__main__ import _remove_new_empty_dirs, mounts_at, restore_mounts

from conftest import cannot_run

MOUNTINFO = """\
23 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
46 23 0:22 /fs/bpf /sys/fs/bpf rw,relatime - sysfs sysfs rw
1056 46 0:60 / /sys/fs/bpf rw,relatime - bpf bpf rw,mode=700
1060 23 0:61 / /sys/fs/bpfx rw,relatime - bpf bpf rw
"""


def test_the_mounts_at_a_path_are_read_oldest_first(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert mounts_at("/sys/fs/bpf", str(info)) == ["sysfs", "bpf"]
    assert mounts_at("/sys/fs", str(info)) == []


def restore(before: list[str], now: list[str], path: Path) -> tuple[str, list[str]]:
    taken: list[str] = []
    said = restore_mounts(before, str(path), mounts=lambda p: list(now), umount=taken.append)
    return said, taken


def test_what_the_run_mounted_is_taken_off_when_nothing_is_left_in_it(tmp_path: Path) -> None:
    assert restore([], ["sysfs", "bpf"], tmp_path) == ("", [str(tmp_path)] * 2)
    assert restore(["bpf"], ["bpf", "bpf"], tmp_path) == ("", [str(tmp_path)])


def test_mounts_found_at_the_start_or_changed_by_others_stay(tmp_path: Path) -> None:
    assert restore(["bpf"], ["bpf"], tmp_path) == ("", [])
    assert restore([], [], tmp_path) == ("", [])
    assert restore(["bpf"], ["sysfs", "bpf"], tmp_path) == ("", [])  # not what was there


def test_a_mount_holding_pins_stays_and_is_named(tmp_path: Path) -> None:
    for name in ("maps.debug", "progs.debug"):  # the kernel's own (bpf_preload): not pins
        (tmp_path / name).write_text("")
    assert restore([], ["bpf"], tmp_path) == ("", [str(tmp_path)])
    (tmp_path / "someones_pin").write_text("")
    said, taken = restore([], ["bpf"], tmp_path)
    assert taken == [] and said == f"left bpffs mounted at {tmp_path}: it holds someones_pin"


@pytest.mark.system
def test_a_bpffs_mounted_during_the_run_is_unmounted(tmp_path: Path) -> None:
    target = tmp_path / "bpffs"
    target.mkdir()
    before = mounts_at(str(target))
    res = subprocess.run(["mount", "-t", "bpf", "bpf", str(target)], capture_output=True, text=True)
    if res.returncode != 0:
        cannot_run(f"cannot mount bpffs: {res.stderr.strip()}")
    try:
        assert mounts_at(str(target)) == ["bpf"]
        assert restore_mounts(before, str(target)) == ""
        assert mounts_at(str(target)) == []
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


def test_what_iproute2_and_libxdp_made_and_left_empty_is_removed(tmp_path: Path) -> None:
    (tmp_path / "theirs").mkdir()  # there before the run: stays, empty or not
    (tmp_path / "maps.debug").write_text("")
    before = {"theirs", "maps.debug"}
    (tmp_path / "tc" / "globals").mkdir(parents=True)  # iproute2's
    (tmp_path / "ip").symlink_to(tmp_path / "tc")
    (tmp_path / "xdp").symlink_to(tmp_path / "tc")
    (tmp_path / "pins" / "deep").mkdir(parents=True)  # a new directory holding a pin
    (tmp_path / "pins" / "deep" / "a_map").write_text("")
    _remove_new_empty_dirs(before, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.debug", "pins", "theirs"]
    assert (tmp_path / "pins" / "deep" / "a_map").exists()
