"""Maps in the kernel: every common type, checked against bpftool's view of the same map."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

from pybpf.asm import insn as I
from pybpf.errors import SyscallError
from pybpf.maps import Map, key_of, possible_cpus
from pybpf.program import Program
from pybpf.sys.uapi import BPF_EXIST, BPF_NOEXIST, MapFlags, MapType, ProgType

from conftest import need_tool, run

pytestmark = pytest.mark.system
_pin_counter = itertools.count()


def u32(v: int) -> bytes:
    return v.to_bytes(4, sys.byteorder)


def u64(v: int) -> bytes:
    return v.to_bytes(8, sys.byteorder)


def bpftool_dump(m: Map) -> list[dict]:
    out = run(need_tool("bpftool"), "map", "dump", "id", str(m.id), "-j").stdout
    return json.loads(out)


def hexbytes(items: list[str]) -> bytes:
    return bytes(int(x, 16) for x in items)


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    path = Path(f"/sys/fs/bpf/pybpf-test-{os.getpid()}-{next(_pin_counter)}")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def xdp_pass() -> Iterator[Program]:
    with Program.load(ProgType.XDP, [I.mov64_imm(0, 2), I.exit_insn()], name="pass") as p:
        yield p


def test_possible_cpus_matches_sysfs() -> None:
    # The kernel sizes per-CPU values by the possible mask; bpftool agrees (one entry per CPU).
    with Map.create(MapType.PERCPU_ARRAY, 4, 4, 1, name="ncpu") as m:
        assert len(bpftool_dump(m)[0]["values"]) == possible_cpus()


def test_key_of_only_for_4_and_8_bytes() -> None:
    assert key_of(1, 4) == u32(1)
    assert key_of(1, 8) == u64(1)
    with pytest.raises(ValueError):
        key_of(1, 6)


@pytest.mark.kmatrix
def test_array_values_agree_with_bpftool() -> None:
    with Map.create(MapType.ARRAY, 4, 8, 4, name="arr") as m:
        m.update(2, u64(0x1122334455667788))
        assert m.lookup(2) == u64(0x1122334455667788)
        assert m.lookup(0) == bytes(8)  # array elements always exist
        assert m.lookup(9) is None
        assert list(m.keys()) == [u32(i) for i in range(4)]
        dump = {hexbytes(e["key"]): hexbytes(e["value"]) for e in bpftool_dump(m)}
        assert dump == dict(m.items())
        assert m.info().max_entries == 4 and m.name == "arr"


def test_hash_update_flags_delete_iterate() -> None:
    with Map.create(MapType.HASH, 4, 4, 16, name="h") as m:
        for i in range(5):
            m.update(i, i * 10)
        with pytest.raises(SyscallError, match="cannot update an element of map 'h': EEXIST"):
            m.update(1, 0, flags=BPF_NOEXIST)
        with pytest.raises(SyscallError, match="ENOENT"):
            m.update(99, 0, flags=BPF_EXIST)
        assert m.delete(3) is True
        assert m.delete(3) is False
        items = dict(m.items())
        assert items == {u32(i): u32(i * 10) for i in (0, 1, 2, 4)}
        dump = {hexbytes(e["key"]): hexbytes(e["value"]) for e in bpftool_dump(m)}
        assert dump == items
        assert dict(m.lookup_batch(batch_size=2)) == items


@pytest.mark.parametrize("map_type", [MapType.PERCPU_ARRAY, MapType.PERCPU_HASH])
@pytest.mark.kmatrix
def test_percpu_values_are_one_per_possible_cpu(map_type: MapType) -> None:
    ncpu = possible_cpus()
    with Map.create(map_type, 4, 4, 4, name="pc") as m:
        values = [u32(100 + c) for c in range(ncpu)]
        m.update(1, values)
        assert m.lookup(1) == values
        m.update(2, u32(7))  # one value: the same on every CPU
        assert m.lookup(2) == [u32(7)] * ncpu
        with pytest.raises(ValueError, match="possible CPUs"):
            m.update(1, values + [u32(0)])
        dump = {hexbytes(e["key"]): e["values"] for e in bpftool_dump(m)}
        kernel = [hexbytes(v["value"]) for v in sorted(dump[u32(1)], key=lambda v: v["cpu"])]
        assert kernel == values


def test_percpu_value_rounded_to_8_bytes() -> None:
    ncpu = possible_cpus()
    with Map.create(MapType.PERCPU_ARRAY, 4, 12, 1, name="pc12") as m:
        values = [bytes([c + 1]) * 12 for c in range(ncpu)]
        m.update(0, values)
        assert m.lookup(0) == values


def test_lru_hash_evicts() -> None:
    with Map.create(MapType.LRU_HASH, 4, 4, 16, name="lru") as m:
        for i in range(200):
            m.update(i, i)
        keys = list(m.keys())
        assert 0 < len(keys) <= 200
        assert u32(199) in keys  # the most recent survives


def test_ringbuf_map_has_no_elements() -> None:
    with Map.create(MapType.RINGBUF, 0, 0, 4096, name="rb") as m:
        assert m.info().max_entries == 4096
        assert m.type == MapType.RINGBUF
    with pytest.raises(SyscallError, match="cannot create map 'bad_rb' .RINGBUF.: EINVAL"):
        Map.create(MapType.RINGBUF, 0, 0, 4095, name="bad_rb")


def test_prog_array_takes_a_program_and_answers_its_id(xdp_pass: Program) -> None:
    with Map.create(MapType.PROG_ARRAY, 4, 4, 4, name="jmp") as m:
        m.update(1, xdp_pass)
        assert m.lookup(1) == u32(xdp_pass.id)
        assert m.lookup(0) is None  # empty slots are absent for fd arrays


def test_perf_event_array_defaults_to_cpus() -> None:
    with Map.create(MapType.PERF_EVENT_ARRAY, 4, 4, 0, name="perf") as m:
        assert m.max_entries == possible_cpus()


@pytest.mark.parametrize("outer_type", [MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS])
@pytest.mark.kmatrix
def test_map_of_maps(outer_type: MapType) -> None:
    inner = Map.create(MapType.ARRAY, 4, 4, 2, name="inner")
    with inner, Map.create(outer_type, 4, 4, 4, name="outer", inner_map_fd=inner.fd) as outer:
        outer.update(3, inner)
        assert outer.lookup(3) == u32(inner.id)
        dump = {hexbytes(e["key"]): hexbytes(e["value"]) for e in bpftool_dump(outer)}
        assert dump[u32(3)] == u32(inner.id)


def test_freeze_makes_user_space_read_only() -> None:
    with Map.create(MapType.ARRAY, 4, 4, 1, flags=MapFlags.RDONLY_PROG, name="ro") as m:
        m.update(0, 5)
        m.freeze()
        with pytest.raises(SyscallError, match="EPERM"):
            m.update(0, 6)
        assert m.lookup(0) == u32(5)


def test_pin_and_open_pinned(pin_dir: Path) -> None:
    path = pin_dir / "sub" / "counts"
    with Map.create(MapType.HASH, 4, 4, 4, name="pinned") as m:
        m.pin(str(path))
        m.update(1, 11)
        assert (pin_dir / "sub").stat().st_mode & 0o777 == 0o700
        with Map.from_pinned(str(path)) as again:
            assert again.id == m.id and again.lookup(1) == u32(11)
        with Map.from_id(m.id) as by_id:
            assert by_id.name == "pinned" and by_id.key_size == 4


def test_pin_outside_bpffs_is_a_clear_error(tmp_path: Path) -> None:
    m = Map.create(MapType.ARRAY, 4, 4, 1, name="x")
    with m, pytest.raises(SyscallError, match="not on a bpffs mount"):
        m.pin(str(tmp_path / "x"))


def test_close_is_idempotent_and_closed_map_refuses() -> None:
    m = Map.create(MapType.ARRAY, 4, 4, 1, name="c")
    fd = m.fd
    m.close()
    m.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(ValueError, match="closed"):
        m.lookup(0)


def test_wrong_key_size_is_refused_before_the_kernel() -> None:
    m = Map.create(MapType.HASH, 8, 4, 1, name="k8")
    with m, pytest.raises(ValueError, match="key is 4 bytes, not 8"):
        m.update(b"abcd", 1)


def test_pinning_mounts_bpffs_when_missing() -> None:
    """In a private mount namespace without bpffs, pinning mounts it at /sys/fs/bpf first."""
    code = (
        "import sys\n"
        "from pybpf.maps import Map\n"
        "from pybpf.sys.bpffs import is_bpffs\n"
        "assert not is_bpffs('/sys/fs/bpf'), 'bpffs still mounted'\n"
        "with Map.create(2, 4, 4, 1, name='m') as m:\n"
        "    m.pin('/sys/fs/bpf/pybpf-mount-test/m')\n"
        "print(is_bpffs('/sys/fs/bpf/pybpf-mount-test'))\n"
    )
    script = f'while umount -l /sys/fs/bpf 2>/dev/null; do :; done; exec {sys.executable} -c "$0"'
    res = run(
        need_tool("unshare"),
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        code,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True"
    # The host's own bpffs is untouched.
    assert not Path("/sys/fs/bpf/pybpf-mount-test").exists()


def test_queue_has_no_keys_and_peeks_in_fifo_order() -> None:
    with Map.create(MapType.QUEUE, 0, 4, 4, name="q") as q:
        q.update(b"", u32(1))
        q.update(b"", u32(2))
        assert q.lookup(b"") == u32(1)  # a peek: the oldest element stays
        assert q.lookup(b"") == u32(1)
        assert [q.pop(), q.pop(), q.pop()] == [u32(1), u32(2), None]


@pytest.mark.system
def test_batch_read_grows_past_a_full_hash_bucket() -> None:
    """With 600 elements some buckets hold several; a batch of 1 cannot take such a bucket
    (the kernel says ENOSPC) and the reader grows the batch instead of failing."""
    with Map.create(MapType.HASH, 4, 4, 1024, name="h") as m:
        for i in range(600):
            m.update(i, i)
        assert dict(m.lookup_batch(batch_size=1)) == dict(m.items())
