"""Tracing attach kinds, for real: each test triggers the event and reads what the program saw,
checks that bpftool sees the link, and that nothing is left once it is closed (or its process
is killed)."""

from __future__ import annotations

import json
import os
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
from pybpf.errors import BPFError
from pybpf.ringbuf import RingBuffer

from conftest import ROOT, bpf_object, need_tool, run

pytestmark = pytest.mark.system

HIT_TP, HIT_RAW_TP, HIT_TP_BTF = 0, 1, 2


def bpftool_links() -> dict[int, dict]:
    return {x["id"]: x for x in json.loads(run(need_tool("bpftool"), "link", "show", "-j").stdout)}


def count(obj, index: int) -> int:
    return int.from_bytes(obj.maps["hits"][index], "little")


@pytest.fixture
def tracing_obj() -> Iterator:
    spec = pybpf.ObjectSpec.from_file(str(bpf_object("tests/attach_tracing")))
    spec.rodata["target_tgid"] = os.getpid()
    with pybpf.load(spec) as obj:
        yield obj


def test_tracepoint_counts_every_call_and_leaves_with_its_link(tracing_obj) -> None:
    prog = tracing_obj.programs["tp_getppid"]
    link = attach(prog)
    try:
        for _ in range(17):
            os.getppid()
        assert count(tracing_obj, HIT_TP) == 17
        shown = bpftool_links()[link.id]
        assert shown["type"] == "perf_event" and shown["prog_id"] == prog.id
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


HOLDER = """
import os, sys, pybpf
from pybpf.attach import attach_all
spec = pybpf.ObjectSpec.from_file(sys.argv[1])
obj = pybpf.load(spec)
links = attach_all(obj)
print(" ".join(str(link.id) for link in links.links.values()), flush=True)
sys.stdin.read()
"""


def test_links_die_with_a_killed_process() -> None:
    path = bpf_object("tests/attach_tracing")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        ids = {int(i) for i in holder.stdout.readline().split()}
        assert len(ids) == 5 and ids <= set(bpftool_links())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel frees the links with the process's files, right after it is reaped.
    deadline = time.monotonic() + 5
    while ids & set(bpftool_links()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ids & set(bpftool_links())


def test_attach_all_skips_what_needs_arguments(tracing_obj) -> None:
    with attach_all(tracing_obj) as attached:
        assert set(attached.skipped) == {"perf_sample"}
        assert set(attached.links) == set(tracing_obj.programs) - {"perf_sample"}
