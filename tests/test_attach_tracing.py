"""Tracing attach kinds, for real: each test triggers the event and reads what the program saw,
checks that bpftool sees the link, and that nothing is left once it is closed (or its process
is killed)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

import pybpf
from pybpf.attach import NeedsArguments, attach, attach_all
from pybpf.errors import BPFError, SyscallError
from pybpf.ringbuf import RingBuffer
from pybpf.sys.perf import tracefs

from conftest import ROOT, bpf_object, need_tool, on_one_cpu, run, scaled

pytestmark = [pytest.mark.system, pytest.mark.kernel_btf]

HIT_TP, HIT_RAW_TP, HIT_TP_BTF = 0, 1, 2


def bpftool_links() -> dict[int, dict]:
    return {x["id"]: x for x in json.loads(run(need_tool("bpftool"), "link", "show", "-j").stdout)}


def start_bpftrace(script: str) -> subprocess.Popen:
    """bpftrace running ``script``, returned once the kernel lists its probes (bpftrace says
    "Attaching" before it has attached)."""
    bpftrace = need_tool("bpftrace")
    tracefs()  # bpftrace looks for tracefs but does not mount it (a fresh host has none)
    tracer = subprocess.Popen(
        [bpftrace, "-e", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + scaled(30)
    while not [p for p in bpftool_perf() if p["pid"] == tracer.pid]:
        if time.monotonic() > deadline or tracer.poll() is not None:
            stop_bpftrace(tracer)
            pytest.fail("bpftrace did not attach")
        time.sleep(0.1)
    return tracer


def stop_bpftrace(tracer: subprocess.Popen) -> str:
    """Ctrl-C to bpftrace, which then prints its maps: what it printed. Detaching its probes
    waits for RCU grace periods, slow on a loaded machine: it gets a minute (scaled). A Ctrl-C
    that lands between bpftrace's check of it and its wait for events can go unseen (seen in CI:
    bpftrace still waiting a minute later), so it is sent again every few seconds, as a user would
    press it again; a second one changes nothing of what bpftrace prints."""
    deadline = time.monotonic() + scaled(60)
    while True:
        tracer.send_signal(signal.SIGINT)
        try:
            return tracer.communicate(timeout=scaled(5))[0]
        except subprocess.TimeoutExpired:
            if time.monotonic() < deadline:
                continue  # communicate() keeps what it has read for the next call
            tracer.kill()
            tracer.communicate()
            raise


def bpftool_perf() -> list[dict]:
    return json.loads(run(need_tool("bpftool"), "perf", "show", "-j").stdout)


def count(obj, index: int) -> int:
    return int.from_bytes(obj.maps["hits"][index], "little")


def loaded_for_this_process(name: str) -> Iterator:
    """bpf/tests/``name`` loaded with its ``target_tgid`` set to this process, so that its
    programs count only what the test itself does; closed after the test."""
    spec = pybpf.ObjectSpec.from_file(str(bpf_object(f"tests/{name}")))
    spec.rodata["target_tgid"] = os.getpid()
    with pybpf.load(spec) as obj:
        yield obj


@pytest.fixture
def tracing_obj() -> Iterator:
    yield from loaded_for_this_process("attach_tracing")


def test_tracepoint_counts_every_call_and_leaves_with_its_link(tracing_obj) -> None:
    prog = tracing_obj.programs["tp_getppid"]
    link = attach(prog)
    try:
        for _ in range(17):
            os.getppid()
        assert count(tracing_obj, HIT_TP) == 17
        shown = bpftool_links()[link.id]
        assert shown["type"] == "perf_event" and shown["prog_id"] == prog.id
        # bpftool asks the kernel what each of our perf events is (BPF_TASK_FD_QUERY).
        perf = [p for p in bpftool_perf() if p["pid"] == os.getpid()]
        assert [(p["fd_type"], p["tracepoint"], p["prog_id"]) for p in perf] == [
            ("tracepoint", "sys_enter_getppid", prog.id)
        ]
    finally:
        link_id = link.id
        link.close()
    os.getppid()
    assert count(tracing_obj, HIT_TP) == 17
    assert link_id not in bpftool_links()


EXEC_EVENT = struct.Struct("<II16s64s")


def test_tracepoint_sees_each_exec_like_execsnoop(tracing_obj) -> None:
    ring = RingBuffer.from_map(tracing_obj.maps["events"])
    with attach(tracing_obj.programs["tp_exec"]), ring:
        children = [subprocess.Popen(["/bin/true", str(i)]) for i in range(3)]
        for child in children:
            child.wait()
        records = [EXEC_EVENT.unpack(r[: EXEC_EVENT.size]) for r in ring.drain()]
    seen = {pid: (ppid, comm, name) for pid, ppid, comm, name in records}
    for child in children:
        ppid, comm, filename = seen[child.pid]
        assert ppid == os.getpid()
        assert comm.rstrip(b"\0") == b"true"
        assert filename.rstrip(b"\0") == b"/bin/true"


def test_no_such_tracepoint_is_one_line(tracing_obj) -> None:
    with pytest.raises(BPFError) as err:
        attach(tracing_obj.programs["tp_getppid"], target="sched/no_such_event")
    assert str(err.value).startswith("no tracepoint sched:no_such_event: ENOENT")
    assert "\n" not in str(err.value)


def test_raw_tracepoint_sees_the_syscall_number(tracing_obj) -> None:
    prog = tracing_obj.programs["raw_tp_sys_enter"]
    with attach(prog) as link:
        for _ in range(9):
            os.getppid()
        shown = bpftool_links()[link.id]
        assert shown["type"] == "raw_tracepoint" and shown["tp_name"] == "sys_enter"
    assert count(tracing_obj, HIT_RAW_TP) == 9
    assert link.closed


def test_no_such_raw_tracepoint_is_one_line(tracing_obj) -> None:
    with pytest.raises(BPFError, match="no raw tracepoint 'no_such_tp'"):
        attach(tracing_obj.programs["raw_tp_sys_enter"], target="no_such_tp")


def test_tp_btf_sees_typed_arguments(tracing_obj) -> None:
    prog = tracing_obj.programs["tp_btf_sys_enter"]
    with attach(prog) as link:
        for _ in range(5):
            os.getppid()
        shown = bpftool_links()[link.id]
        assert shown["prog_id"] == prog.id
    assert count(tracing_obj, HIT_TP_BTF) == 5


def test_iterator_lists_the_tasks_ps_lists(tracing_obj) -> None:
    with attach(tracing_obj.programs["iter_tasks"]) as link:
        assert bpftool_links()[link.id]["type"] == "iter"
        lines = link.read().decode().splitlines()
    tasks = dict(line.split(" ", 1) for line in lines)
    comm = Path("/proc/self/comm").read_text().strip()
    assert tasks[str(os.getpid())] == comm
    proc = {p.name for p in Path("/proc").iterdir() if p.name.isdigit()}
    # Tasks come and go between the two looks; nearly all are in both.
    assert len(proc & set(tasks)) >= 0.9 * len(proc)


def test_pinned_iterator_is_a_file_cat_can_read(tracing_obj) -> None:
    pin = f"/sys/fs/bpf/pybpf_iter_{os.getpid()}"
    with attach(tracing_obj.programs["iter_tasks"]) as link:
        link.pin(pin)
    try:
        out = run("cat", pin).stdout
        assert f"{os.getpid()} " in out
    finally:
        os.unlink(pin)


def test_perf_event_needs_its_event_named(tracing_obj) -> None:
    with pytest.raises(NeedsArguments, match="sample_freq"):
        attach(tracing_obj.programs["perf_sample"])


def test_perf_event_samples_on_every_cpu(tracing_obj) -> None:
    from pybpf.sys.perf import online_cpus

    prog = tracing_obj.programs["perf_sample"]
    with attach(prog, sample_freq=1000) as links:
        assert len(links) == len(online_cpus())
        ids = {link.id for link in links}
        shown = bpftool_links()
        assert all(shown[i]["prog_id"] == prog.id for i in ids)
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            pass
        per_cpu = tracing_obj.maps["samples"][0]
    assert sum(int.from_bytes(v, "little") for v in per_cpu) >= 100
    assert not ids & set(bpftool_links())


def test_perf_event_by_period_on_chosen_cpus(tracing_obj) -> None:
    """cpu-clock every 1 ms (its period counts nanoseconds) on one CPU only: one perf event, and
    that CPU, kept busy, is sampled about once per millisecond the event was on."""
    from pybpf.link.perf_event import perf_event

    prog = tracing_obj.programs["perf_sample"]
    with on_one_cpu() as cpu:
        start = time.monotonic()
        with perf_event(prog, sample_period=1_000_000, cpus=[cpu]) as group:
            assert len(group) == 1 and bpftool_links()[group[0].id]["prog_id"] == prog.id
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                pass
        elapsed_ms = (time.monotonic() - start) * 1000
    per_cpu = [int.from_bytes(v, "little") for v in tracing_obj.maps["samples"][0]]
    others = per_cpu[:cpu] + per_cpu[cpu + 1 :]
    assert 100 <= per_cpu[cpu] <= elapsed_ms * 1.1 + 10 and sum(others) == 0


HOLDER = """
import os, sys, pybpf
from pybpf.attach import attach_all
spec = pybpf.ObjectSpec.from_file(sys.argv[1])
obj = pybpf.load(spec)
links = attach_all(obj)
print(" ".join(str(link.id) for link in links.links.values()), flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def killed_holder(script: str, *args: str) -> Iterator[tuple[subprocess.Popen, set[int]]]:
    """A Python process running ``script``, which attaches and prints its link ids: yields it and
    the ids, kills it (SIGKILL: no clean-up of its own) and checks that bpftool lists none of
    its links any more."""
    holder = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        ids = {int(i) for i in holder.stdout.readline().split()}
        yield holder, ids
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel frees the links with the process's files, right after it is reaped.
    deadline = time.monotonic() + scaled(15)
    while ids & set(bpftool_links()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ids & set(bpftool_links())


def test_links_die_with_a_killed_process() -> None:
    with killed_holder(HOLDER, str(bpf_object("tests/attach_tracing"))) as (_, ids):
        assert len(ids) == 5 and ids <= set(bpftool_links())


def test_attach_all_skips_what_needs_arguments(tracing_obj) -> None:
    with attach_all(tracing_obj) as attached:
        assert set(attached.skipped) == {"perf_sample"}
        assert set(attached.links) == set(tracing_obj.programs) - {"perf_sample"}


# --- trampolines: fentry, fexit, fmod_ret, lsm -------------------------------------------------

HIT_FENTRY, HIT_FEXIT, HIT_FEXIT_RET, HIT_FMOD_RET, HIT_LSM = range(5)


@pytest.fixture
def trampoline_obj(tmp_path: Path) -> Iterator:
    """attach_trampoline.bpf.o loaded for this process; skipped (with the kernel's answer) on a
    kernel that refuses BPF trampolines altogether, as this machine's 6.18 does (EPERM)."""
    victim = tmp_path / "victim"
    victim.write_text("x")
    spec = pybpf.ObjectSpec.from_file(str(bpf_object("tests/attach_trampoline")))
    spec.rodata["target_tgid"] = os.getpid()
    spec.rodata["target_ino"] = victim.stat().st_ino
    spec.rodata["denied_mode"] = 0o741
    try:
        obj = pybpf.load(spec)
    except SyscallError as e:
        if e.errno != errno.EPERM:
            raise
        pytest.skip(f"this kernel refuses BPF trampolines: {e}")
    with obj:
        yield obj, victim


@pytest.mark.kmatrix
def test_fentry_and_fexit_see_calls_and_return_values(trampoline_obj, tmp_path: Path) -> None:
    obj, _ = trampoline_obj
    entry = attach(obj.programs["fentry_unlinkat"])
    leave = attach(obj.programs["fexit_unlinkat"])
    with entry, leave:
        assert bpftool_links()[entry.id]["type"] == "tracing"
        for i in range(3):
            (tmp_path / f"f{i}").write_text("")
            os.unlink(tmp_path / f"f{i}")
        with pytest.raises(FileNotFoundError):
            os.unlink(tmp_path / "missing")
    assert count(obj, HIT_FENTRY) == count(obj, HIT_FEXIT) == 4
    assert count(obj, HIT_FEXIT_RET) == errno.ENOENT


@pytest.mark.kmatrix
def test_fmod_ret_changes_what_the_syscall_returns(trampoline_obj, tmp_path: Path) -> None:
    obj, victim = trampoline_obj
    with attach(obj.programs["fmod_ret_chmod"]):
        os.chmod(victim, 0o640)
        with pytest.raises(PermissionError) as err:
            os.chmod(victim, 0o741)
        assert err.value.errno == errno.EACCES
    os.chmod(victim, 0o741)
    assert count(obj, HIT_FMOD_RET) == 1


def bpf_lsm_active() -> bool:
    lsm = Path("/sys/kernel/security/lsm")
    if not lsm.exists():
        subprocess.run(["mount", "-t", "securityfs", "securityfs", "/sys/kernel/security"],
                       capture_output=True, check=False)  # fmt: skip
    return lsm.exists() and "bpf" in lsm.read_text().split(",")


@pytest.mark.kmatrix
def test_lsm_program_refuses_an_open(trampoline_obj) -> None:
    obj, victim = trampoline_obj
    if not bpf_lsm_active():
        pytest.skip("the BPF LSM is not active on this kernel (lsm= lacks 'bpf')")
    with attach(obj.programs["lsm_file_open"]), pytest.raises(PermissionError):
        victim.read_text()
    assert victim.read_text() == "x"
    assert count(obj, HIT_LSM) == 1


# --- kprobes -----------------------------------------------------------------------------------

HIT_KPROBE, HIT_KRETPROBE, HIT_KRETPROBE_ERR, HIT_MULTI, HIT_MULTI_COOKIE = range(5)
HAS_KPROBES = Path("/sys/bus/event_source/devices/kprobe").exists()


@pytest.fixture
def kprobe_obj() -> Iterator:
    yield from loaded_for_this_process("attach_kprobe")


def unlink_some(directory: Path, n: int) -> None:
    for i in range(n):
        (directory / f"k{i}").write_text("")
        os.unlink(directory / f"k{i}")
    with pytest.raises(FileNotFoundError):
        os.unlink(directory / "missing")


@pytest.mark.kmatrix
def test_kprobe_and_kretprobe_count_calls(kprobe_obj, tmp_path: Path) -> None:
    if not HAS_KPROBES:
        pytest.skip("this kernel has no kprobes (no kprobe PMU)")
    entry = attach(kprobe_obj.programs["kprobe_unlinkat"])
    leave = attach(kprobe_obj.programs["kretprobe_unlinkat"])
    with entry, leave:
        perf = {p["prog_id"]: p for p in bpftool_perf() if p["pid"] == os.getpid()}
        assert perf[kprobe_obj.programs["kprobe_unlinkat"].id]["func"] == "do_unlinkat"
        assert perf[kprobe_obj.programs["kretprobe_unlinkat"].id]["fd_type"] == "kretprobe"
        unlink_some(tmp_path, 3)
    assert count(kprobe_obj, HIT_KPROBE) == count(kprobe_obj, HIT_KRETPROBE) == 4
    assert count(kprobe_obj, HIT_KRETPROBE_ERR) == errno.ENOENT


@pytest.mark.kmatrix
def test_kprobe_multi_attaches_by_pattern_with_cookies(kprobe_obj, tmp_path: Path) -> None:
    if not HAS_KPROBES:
        pytest.skip("this kernel has no kprobes (no kprobe PMU)")
    prog = kprobe_obj.programs["kprobe_multi_unlinkat"]
    try:
        link = attach(prog, cookies=[7])
    except SyscallError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            pytest.skip(f"this kernel has no multi-kprobes: {e}")
        raise
    with link:
        assert bpftool_links()[link.id]["type"] == "kprobe_multi"
        unlink_some(tmp_path, 2)
    assert count(kprobe_obj, HIT_MULTI) == 3
    assert count(kprobe_obj, HIT_MULTI_COOKIE) == 3 * 7


@pytest.mark.kmatrix
def test_kretprobe_with_maxactive_is_made_through_tracefs(kprobe_obj, tmp_path: Path) -> None:
    if not HAS_KPROBES:
        pytest.skip("this kernel has no kprobes (no kprobe PMU)")
    events = Path(tracefs(), "kprobe_events")
    with attach(kprobe_obj.programs["kretprobe_unlinkat"], maxactive=16) as link:
        name = link.event.split("/")[1]
        mine = [line for line in events.read_text().splitlines() if name in line]
        assert len(mine) == 1 and mine[0].startswith(f"r16:kprobes/{name} do_unlinkat")
        unlink_some(tmp_path, 2)
    assert name not in events.read_text()
    assert count(kprobe_obj, HIT_KRETPROBE) == 3
    assert count(kprobe_obj, HIT_KRETPROBE_ERR) == errno.ENOENT


def test_kprobe_on_a_kernel_without_kprobes_is_one_line(kprobe_obj) -> None:
    if HAS_KPROBES:
        pytest.skip("this kernel has kprobes")
    cases = [(name, {}) for name in ("kprobe_unlinkat", "kretprobe_unlinkat")]
    cases += [("kprobe_multi_unlinkat", {}), ("kretprobe_unlinkat", {"maxactive": 8})]
    for name, options in cases:
        with pytest.raises(SyscallError) as err:
            attach(kprobe_obj.programs[name], **options)
        assert str(err.value).endswith(
            "this kernel has no kprobe support (CONFIG_KPROBE_EVENTS)"
        ) and "\n" not in str(err.value)


def test_tracepoint_by_ioctl_as_before_5_15(tracing_obj) -> None:
    """The attachment of kernels without perf-event links: no link, the perf event's fd holds
    the program, and closing it detaches."""
    from pybpf.link.tracepoint import tracepoint

    prog = tracing_obj.programs["tp_getppid"]
    before = set(bpftool_links())
    link = tracepoint(prog, "syscalls", "sys_enter_getppid", use_link=False)
    try:
        assert link.legacy and set(bpftool_links()) == before
        perf = [p for p in bpftool_perf() if p["pid"] == os.getpid()]
        assert [(p["fd"], p["prog_id"]) for p in perf] == [(link.fd, prog.id)]
        for _ in range(4):
            os.getppid()
        with pytest.raises(BPFError, match="without a bpf_link: nothing to pin"):
            link.pin(f"/sys/fs/bpf/pybpf_legacy_{os.getpid()}")
    finally:
        link.close()
    os.getppid()
    assert count(tracing_obj, HIT_TP) == 4
    assert not [p for p in bpftool_perf() if p["pid"] == os.getpid()]


def test_tracepoint_counts_agree_with_bpftrace(tracing_obj) -> None:
    script = f"tracepoint:syscalls:sys_enter_getppid /pid == {os.getpid()}/ {{ @calls = count(); }}"
    tracer = start_bpftrace(script)
    try:
        with attach(tracing_obj.programs["tp_getppid"]):
            for _ in range(25):
                os.getppid()
    finally:
        out = stop_bpftrace(tracer)
    assert count(tracing_obj, HIT_TP) == int(re.search(r"@calls: (\d+)", out).group(1)) == 25


FRESH = """
import os, sys, pybpf
from pybpf.attach import attach
from pybpf.sys.perf import TRACEFS_CANDIDATES, _is_tracefs
assert not any(_is_tracefs(p) for p in TRACEFS_CANDIDATES), "tracefs is still mounted"
spec = pybpf.ObjectSpec.from_file(sys.argv[1])
spec.rodata["target_tgid"] = os.getpid()
with pybpf.load(spec, programs=["tp_getppid"]) as obj, attach(obj.programs["tp_getppid"]):
    os.getppid()
    print(int.from_bytes(obj.maps["hits"][0], "little"), _is_tracefs("/sys/kernel/tracing"))
"""


def test_tracepoint_on_a_host_without_tracefs_mounts_it() -> None:
    """A freshly booted host has no tracefs: in a mount namespace of our own without it, the
    tracepoint's id is found after pybpf mounts tracefs there."""
    need_tool("unshare")
    umount = (
        "for m in $(awk '$3 == \"tracefs\" {print $2}' /proc/mounts | sort -r); do umount $m; done"
    )
    res = run("unshare", "--mount", "--propagation", "private", "sh", "-c",
              f'{umount}; exec "$0" -c "$1" "$2"', sys.executable, FRESH,
              str(bpf_object("tests/attach_tracing")), cwd=ROOT)  # fmt: skip
    assert res.stdout.split() == ["1", "True"]
