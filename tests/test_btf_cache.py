"""The kernel BTF index kept on disk: used only when it is this blob's, intact and ours."""

from __future__ import annotations

import gzip
import os
import random
import struct
from pathlib import Path

import pytest

from pybpf.btf import cache, kindex
from pybpf.btf.kernel import KernelBTF, kernel_build_id
from pybpf.btf.model import BTF
from pybpf.elfnote import elf_notes

CILIUM = Path("/usr/share/gocode/src/github.com/cilium/ebpf/btf/testdata")
ENTRY = f"vmlinux.btf-index.{kindex.VERSION}"


@pytest.fixture(scope="module")
def blob() -> bytes:
    """A real vmlinux BTF that is the same on every host: cilium's test copy."""
    return gzip.decompress((CILIUM / "vmlinux.btf.gz").read_bytes())


@pytest.fixture(scope="module")
def full(blob) -> BTF:
    return BTF.parse(blob)


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("PYBPF_CACHE_DIR", str(path))
    return path


@pytest.fixture
def builds(monkeypatch) -> list[str]:
    """The names of the blobs whose index was built (not read from the cache)."""
    built: list[str] = []
    real = kindex.Index.build.__func__

    def counting(cls, words, strings, name):
        built.append(name)
        return real(cls, words, strings, name)

    monkeypatch.setattr(kindex.Index, "build", classmethod(counting))
    return built


def assert_answers_like(lazy: KernelBTF, full: BTF) -> None:
    names = sorted({t.name for t in full.types if t.name})
    for name in random.Random(3).sample(names, 500) + ["task_struct", "int", "no such type"]:
        assert lazy.find_all(name) == full.find_all(name), name
    for tid in random.Random(4).sample(range(1, len(full.types)), 500):
        assert lazy.type(tid) == full.type(tid)
    for name in {t.name for t in full.types if "___" in t.name}:
        assert lazy.find_essential(name) == full.find_essential(name), name


def test_second_process_reads_the_index_and_answers_the_same(blob, full, folder, builds):
    assert_answers_like(KernelBTF(blob, cache=True), full)
    assert builds == ["vmlinux"]
    assert (folder / ENTRY).is_file()
    assert_answers_like(KernelBTF(blob, cache=True), full)
    assert builds == ["vmlinux"]  # read back, not built again


def test_entry_and_directory_are_private(blob, folder):
    KernelBTF(blob, cache=True)
    assert (folder.stat().st_mode & 0o777) == 0o700
    assert ((folder / ENTRY).stat().st_mode & 0o777) == 0o600
    assert not [p for p in folder.iterdir() if p.name != ENTRY]  # no temporary left


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="flipped-bit"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b[:8] + (99).to_bytes(4, "little") + b[12:], id="other-version"),
        pytest.param(lambda b: b"\0" * len(b), id="zeroed"),
    ],
)
def test_damaged_entry_is_ignored_and_rewritten(blob, full, folder, builds, damage):
    KernelBTF(blob, cache=True)
    path = folder / ENTRY
    good = path.read_bytes()
    path.write_bytes(damage(good))
    assert_answers_like(KernelBTF(blob, cache=True), full)
    assert builds == ["vmlinux", "vmlinux"]
    assert path.read_bytes() == good


@pytest.mark.parametrize("where", [-2, -100_000])
def test_entry_of_another_kernel_is_stale(blob, full, folder, builds, where):
    other = bytearray(blob)
    # One letter of the last name, or of a name far from both ends (the string section is the
    # blob's last megabytes): another build of the kernel, of the same size.
    other[where] ^= 0x20
    KernelBTF(bytes(other), cache=True)
    assert_answers_like(KernelBTF(blob, cache=True), full)
    assert builds == ["vmlinux", "vmlinux"]


@pytest.mark.system
def test_entry_owned_by_someone_else_is_not_read(blob, full, folder, builds):
    KernelBTF(blob, cache=True)
    path = folder / ENTRY
    os.chown(path, 65534, 65534)  # nobody: could have written anything there
    assert cache.load(ENTRY, kindex.VERSION, cache.digest(blob)) is None
    assert_answers_like(KernelBTF(blob, cache=True), full)
    assert builds == ["vmlinux", "vmlinux"]


@pytest.mark.system
def test_directory_owned_by_someone_else_is_not_used(blob, folder, builds):
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    KernelBTF(blob, cache=True)
    KernelBTF(blob, cache=True)
    assert builds == ["vmlinux", "vmlinux"]
    assert not list(folder.iterdir())


def test_directory_writable_by_others_is_not_used(blob, folder, builds):
    folder.mkdir(mode=0o700)
    folder.chmod(0o777)
    KernelBTF(blob, cache=True)
    KernelBTF(blob, cache=True)
    assert builds == ["vmlinux", "vmlinux"]
    assert not list(folder.iterdir())


def test_entry_writable_by_others_or_a_symlink_is_not_read(blob, folder, tmp_path):
    KernelBTF(blob, cache=True)
    path, key = folder / ENTRY, cache.digest(blob)
    path.chmod(0o666)
    assert cache.load(ENTRY, kindex.VERSION, key) is None
    path.chmod(0o600)
    assert cache.load(ENTRY, kindex.VERSION, key) is not None
    moved = tmp_path / "elsewhere"
    path.rename(moved)
    path.symlink_to(moved)
    assert cache.load(ENTRY, kindex.VERSION, key) is None


def test_empty_setting_turns_the_cache_off(blob, monkeypatch, builds):
    monkeypatch.setenv("PYBPF_CACHE_DIR", "")
    assert cache.cache_dir() is None
    KernelBTF(blob, cache=True)
    KernelBTF(blob, cache=True)
    assert builds == ["vmlinux", "vmlinux"]


def test_default_location_by_user(monkeypatch, tmp_path):
    monkeypatch.delenv("PYBPF_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert cache.cache_dir() == Path("/var/cache/pybpf")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cache.cache_dir() == tmp_path / "pybpf"


def test_unwritable_location_costs_only_time(blob, full, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("PYBPF_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    assert_answers_like(KernelBTF(blob, cache=True), full)


# --- the running kernel's BTF: keyed by its build ID ------------------------------------------


def test_a_kernel_with_a_build_id_is_found_without_reading_its_blob(
    blob, full, folder, builds, monkeypatch
):
    """vmlinux BTF is in the kernel image the build ID is a hash of: the entry is found by that
    ID, and the blob's megabytes are not checksummed to find it."""
    one, two = bytes(range(20)), bytes(range(1, 21))
    KernelBTF(blob, cache=True, build_id=one)

    def no_checksum(data):
        raise AssertionError("the whole blob was checksummed")

    monkeypatch.setattr(cache, "digest", no_checksum)
    assert_answers_like(KernelBTF(blob, cache=True, build_id=one), full)
    assert builds == ["vmlinux"]
    KernelBTF(blob, cache=True, build_id=two)  # another kernel: built again, and kept
    assert builds == ["vmlinux", "vmlinux"]
    KernelBTF(blob, cache=True, build_id=two)
    assert builds == ["vmlinux", "vmlinux"]


def notes(*records: tuple[bytes, int, bytes], order: str = "=") -> bytes:
    """ELF notes as the kernel exports them: (name, type, descriptor), each padded to 4 bytes."""
    out = b""
    for name, ntype, desc in records:
        out += struct.pack(order + "III", len(name), len(desc), ntype)
        out += name + b"\0" * (-len(name) % 4) + desc + b"\0" * (-len(desc) % 4)
    return out


XEN = (b"Xen\0", 18, b"\0\xbf\x78\x03\0\0\0\0")
SALT = (b"Linux\0", 0x100, b"6.1.0-42-amd64\0")
BUILD_ID = (b"GNU\0", 3, bytes.fromhex("a3e4cd60a8ec14f02aa41b41d5b5846d3d9f1dd8"))


@pytest.mark.parametrize(
    "content, expected",
    [
        pytest.param(notes(BUILD_ID, SALT, XEN), BUILD_ID[2], id="first"),
        pytest.param(notes(XEN, SALT, BUILD_ID), BUILD_ID[2], id="after-others"),
        pytest.param(notes(XEN, SALT), b"", id="none"),
        pytest.param(notes((b"GNU\0", 1, b"\0" * 16), XEN), b"", id="gnu-abi-tag-only"),
        pytest.param(notes(XEN, BUILD_ID)[:-4], b"", id="truncated"),
        pytest.param(b"", b"", id="empty"),
    ],
)
def test_build_id_is_read_from_the_kernels_notes(tmp_path, content, expected):
    path = tmp_path / "notes"
    path.write_bytes(content)
    assert kernel_build_id(str(path)) == expected


@pytest.mark.parametrize("order", ["<", ">"])
def test_note_records_are_walked_in_the_files_byte_order(order):
    usdt = (b"stapsdt\0", 3, bytes(range(29)))  # lengths 8 and 29: no padding, then 3 bytes
    data = notes(BUILD_ID, usdt, XEN, order=order)
    walked = [(b"GNU", 3, BUILD_ID[2]), (b"stapsdt", 3, usdt[2]), (b"Xen", 18, XEN[2])]
    assert list(elf_notes(data, order)) == walked
    # A record cut anywhere is not returned; the ones before it are.
    cut = len(notes(BUILD_ID, usdt, order=order))
    for end in range(cut, len(data)):
        assert list(elf_notes(data[:end], order)) == walked[:2]


def test_no_notes_file_is_no_build_id(tmp_path):
    assert kernel_build_id(str(tmp_path / "missing")) == b""
