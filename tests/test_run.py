"""``pybpf run`` end to end: a real process runs an object, the test makes the kernel produce
events, stops the process the way a user would, and checks what it printed and what it left.

The objects (bpf/tests/run_*.bpf.c) mirror the tutorial tools: an execsnoop-like ring buffer
program with a hash map and bpf_printk, a sigsnoop-like perf buffer program, a runqlat-like
log2 histogram. The events are compared with what the test itself did (the pids it spawned,
the signals it sent, the sleeps it asked for); "nothing left" is asked of the kernel (the
program id no longer exists: no link, no fd keeps it).
"""

from __future__ import annotations

import errno
import json
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pybpf.btf.dump import format_log2_hist
from tests.conftest import ROOT, bpf_object, need_tool, on_one_cpu, run, scaled

# Every test here runs in the kernel matrix's guests too (6.1 and 6.12), as on this machine.
pytestmark = [pytest.mark.system, pytest.mark.kmatrix]

ATTACHED = re.compile(r"attached (.*); reading")
PROG_ID = re.compile(r"\(prog id (\d+)\)")


class RunProcess:
    """``pybpf run OBJ ARGS`` in the background; stderr read by a thread."""

    def __init__(self, obj: str, *args: str) -> None:
        # -X faulthandler: a run that does not stop is made to print where each thread is
        # (SIGABRT, in ``stop``), so that the failure says where it hung
        self.proc = subprocess.Popen(
            [sys.executable, "-X", "faulthandler", "-m", "pybpf", "run", obj, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.err: list[str] = []
        self._lines: queue.Queue = queue.Queue()
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_attached(self, timeout: float = 20) -> list[int]:
        """The ids of the attached programs, once pybpf run says it is attached."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self._lines.get(timeout=end - time.monotonic())
            except queue.Empty:
                break
            if line is None:
                break
            m = ATTACHED.search(line)
            if m:
                return [int(i) for i in PROG_ID.findall(m.group(1))]
        self.proc.kill()
        pytest.fail(f"pybpf run did not attach: {''.join(self.err)}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> tuple[int, str]:
        self.proc.send_signal(sig)
        # stdout only: stderr is the thread's, and a second reader would take lines from it
        self.proc.stderr = None
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Where it hangs (faulthandler's dump of every thread), and no process left behind
            # holding what the next tests need (trace_pipe, which one reader at a time may hold).
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
            self._err_reader.join(timeout=5)
            pytest.fail(
                f"pybpf run did not end within {timeout} s of {signal.Signals(sig).name}:\n"
                + "".join(self.err)
            )
        self._err_reader.join(timeout=5)  # its last lines
        return self.proc.returncode, out


def json_lines(out: str) -> tuple[list[dict], list[str], dict[str, dict]]:
    """(events, printk lines, maps by name) of ``pybpf run --json`` output."""
    events, printk, maps = [], [], {}
    for line in out.splitlines():
        d = json.loads(line)
        if "entries" in d:
            maps[d["map"]] = d
        elif "printk" in d:
            printk.append(d["printk"])
        else:
            events.append(d)
    return events, printk, maps


def trace_pipe_free(timeout: float = 60) -> None:
    """Wait until no other process reads trace_pipe (the kernel lets one at a time: a run
    started while another test or tool reads it would show no bpf_printk line)."""
    from pybpf.run import TRACEFS, mount_tracefs, tracefs_mounted

    if not tracefs_mounted():
        mount_tracefs()
    end = time.monotonic() + scaled(timeout)
    while True:
        try:
            os.close(os.open(f"{TRACEFS}/trace_pipe", os.O_RDONLY | os.O_NONBLOCK))
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > end:
                pytest.fail(f"trace_pipe stays taken by another process: {e.strerror}")
            time.sleep(0.2)


def printk_run_ok(r: RunProcess) -> None:
    assert "bpf_printk output not shown" not in "".join(r.err), (
        "another process took trace_pipe during the run: " + "".join(r.err)
    )


def prog_exists(prog_id: int) -> bool:
    res = run(need_tool("bpftool"), "prog", "show", "id", str(prog_id), check=False)
    return res.returncode == 0


def links_of(prog_ids: list[int]) -> list[dict]:
    out = run(need_tool("bpftool"), "link", "show", "-j").stdout
    return [lk for lk in json.loads(out or "[]") if lk.get("prog_id") in prog_ids]


def gone(prog_ids: list[int], timeout: float = 5) -> bool:
    """Programs are freed after an RCU grace period once their last reference goes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(prog_exists(i) for i in prog_ids):
            return True
        time.sleep(0.05)
    return False


def spawn_true(n: int) -> list[int]:
    pids = []
    for _ in range(n):
        p = subprocess.Popen(["/bin/true"])
        p.wait()
        pids.append(p.pid)
    return pids


# --- ring buffer, hash map, bpf_printk --------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_execsnoop_events_printk_and_maps_then_nothing_left(sig: int) -> None:
    trace_pipe_free()
    r = RunProcess(str(bpf_object("tests/run_execsnoop")), "--json")
    ids = r.wait_attached()
    assert len(ids) == 1 and links_of(ids), "the program is attached through a bpf_link"
    pids = spawn_true(3)
    time.sleep(0.5)
    rc, out = r.stop(sig)
    assert rc == 0, "".join(r.err)  # (the whole of stderr: its error is the last line)
    printk_run_ok(r)
    events, printk, maps = json_lines(out)
    ours = [e["event"] for e in events if e["event"]["pid"] in pids]
    assert sorted(e["pid"] for e in ours) == sorted(pids)
    for e in ours:
        assert e["ppid"] == os.getpid()
        assert e["comm"] == "true" and e["filename"] == "/bin/true"
        assert e["uid"] == 0 and e["exit_event"] is False
    for pid in pids:
        assert any(f"pybpf-test exec pid {pid} ppid {os.getpid()}" in ln for ln in printk)
    counts = {e["key"]: e["value"] for e in maps["execs_by_ppid"]["entries"]}
    assert counts[os.getpid()] >= 3
    assert "rb" not in maps  # ring buffers are read live, not dumped
    assert gone(ids) and not links_of(ids)


def test_text_output_one_line_per_event_and_maps_at_the_end() -> None:
    # --set: only execs by children of this test (targ_ppid is a const volatile of the object)
    r = RunProcess(str(bpf_object("tests/run_execsnoop")), "--set", f"targ_ppid={os.getpid()}")
    r.wait_attached()
    (pid,) = spawn_true(1)
    time.sleep(0.5)
    rc, out = r.stop()
    assert rc == 0
    events = [ln for ln in out.splitlines() if " rb pid=" in ln]
    assert len(events) == 1 and f"ppid={os.getpid()} " in events[0]
    line = next(ln for ln in out.splitlines() if f" rb pid={pid} " in ln)
    assert re.match(r"\d\d:\d\d:\d\d\.\d{6} rb pid=\d+ ppid=\d+ uid=0 ts_ns=\d+ ", line)
    assert "comm=true filename=/bin/true exit_event=false" in line
    assert re.search(r"^map execs_by_ppid \(hash, \d+ entr(y|ies)\):$", out, re.M)
    assert re.search(rf"^  key={os.getpid()} value=\d+$", out, re.M)
    assert "decoded as struct event (pointed at by a global variable)" in "".join(r.err)


def test_kill_9_leaves_nothing_attached() -> None:
    r = RunProcess(str(bpf_object("tests/run_execsnoop")), "--json")
    ids = r.wait_attached()
    r.proc.kill()
    r.proc.wait(timeout=10)
    assert gone(ids) and not links_of(ids)


# --- perf buffer ---------------------------------------------------------------------------------


def test_sigsnoop_events_through_a_perf_buffer() -> None:
    r = RunProcess(str(bpf_object("tests/run_sigsnoop")), "--json", "--no-maps")
    ids = r.wait_attached()
    child = subprocess.Popen(["sleep", "30"])
    try:
        os.kill(child.pid, 0)
        os.kill(child.pid, signal.SIGUSR1)
        child.wait(timeout=10)
        time.sleep(0.3)
    finally:
        child.kill()
    rc, out = r.stop()
    assert rc == 0, "".join(r.err)  # (the whole of stderr: its error is the last line)
    events, _, maps = json_lines(out)
    mine = [e["event"] for e in events if e["event"]["pid"] == os.getpid()]
    sent = [(e["tpid"], e["sig"]) for e in mine if e["tpid"] == child.pid]
    assert sent == [(child.pid, 0), (child.pid, signal.SIGUSR1)]
    assert all(e["comm"] == Path(sys.executable).name[:15] for e in mine)
    assert maps == {}  # --no-maps
    assert gone(ids)
    assert "decoded as struct event in the DWARF (named event)" in "".join(r.err)


# --- histogram ----------------------------------------------------------------------------------


def test_runqlat_like_histogram_drawn_at_the_end() -> None:
    r = RunProcess(str(bpf_object("tests/run_hist")), "--hist-unit", "usecs")
    r.wait_attached()
    sleeps = [0.001, 0.001, 0.003, 0.02, 0.02, 0.02]  # 1000 us -> slot 9, 3000 -> 11, ...
    # nanosleep(2) asks for a duration (Python's time.sleep asks for a deadline)
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None)\n"
        f"for s in {sleeps!r}:\n"
        "    ts = (ctypes.c_long * 2)(0, int(s * 1e9))\n"
        "    libc.nanosleep(ts, None)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    time.sleep(0.2)
    rc, out = r.stop()
    assert rc == 0, "".join(r.err)  # (the whole of stderr: its error is the last line)
    counts = [0] * 26
    for s in sleeps:
        counts[int(s * 1_000_000).bit_length() - 1] += 1
    lines = out.splitlines()
    heads = [i for i, ln in enumerate(lines) if ln.startswith("key = ")]
    ours = [i for i in heads if "comm = python" in lines[i] and _is_hist_of(lines, i, counts)]
    assert ours, out
    assert re.search(r"^map total_sleeps \(array, 1 entry\):$", out, re.M)


def _is_hist_of(lines: list[str], i: int, counts: list[int]) -> bool:
    want = format_log2_hist(counts, "usecs")
    return lines[i + 1 : i + 1 + len(want)] == want


# --- ending and errors ----------------------------------------------------------------------------


def test_duration_ends_the_run_by_itself() -> None:
    obj = str(bpf_object("tests/run_execsnoop"))
    start = time.monotonic()
    res = run(sys.executable, "-m", "pybpf", "run", obj, "-d", "1", "--no-maps", cwd=ROOT)
    assert 1 <= time.monotonic() - start < 15
    assert "attached handle_exec" in res.stderr


def test_a_missing_tracepoint_is_one_line_and_nothing_is_left() -> None:
    obj = str(bpf_object("tests/run_bad_tp"))
    res = run(sys.executable, "-m", "pybpf", "run", obj, check=False, cwd=ROOT)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "pybpf: error: no tracepoint pybpf_nosuch:nosuch_event: ENOENT (No such file or "
        "directory): /sys/kernel/tracing/events/pybpf_nosuch/nosuch_event/id does not exist"
    ]
    assert res.stdout == ""


def test_bad_options_are_one_line_errors() -> None:
    obj = str(bpf_object("tests/run_execsnoop"))
    cases = [
        (["--prog", "nosuch"], "no program named 'nosuch'"),
        (["--event-type", "nosuch", "-d", "1"], "no struct named 'nosuch'"),
        (["-d", "0"], "--duration must be a positive number"),
        (
            ["--set", "nosuch=1"],
            "pybpf: error: --set nosuch: run_execsnoop has no global variable 'nosuch' "
            "(known: .rodata: targ_ppid; .data/.bss: unused)",
        ),
        (["--set", "targ_ppid=1" + "0" * 20], "does not fit 'targ_ppid'"),
    ]
    for args, msg in cases:
        res = run(sys.executable, "-m", "pybpf", "run", obj, *args, check=False, cwd=ROOT)
        assert res.returncode == 1, args
        assert len(res.stderr.splitlines()) == 1 and msg in res.stderr, res.stderr


def test_verbose_shows_the_data_sections_with_the_values_set() -> None:
    obj = str(bpf_object("tests/run_hist"))
    args = [sys.executable, "-m", "pybpf", "run", obj, "-d", "0.5", "--set", "targ_tgid=12345"]
    quiet = run(*args, cwd=ROOT).stdout
    verbose = run(*args, "-v", cwd=ROOT).stdout
    assert "run_hist.rodata" not in quiet
    assert "map run_hist.rodata (array, 1 entry):\n  key=0 targ_tgid=12345\n" in verbose
    assert re.search(r"^  key=0 zero=\{\"slots\":\[0(,0){25}\],\"comm\":\"\"\}$", verbose, re.M)


def test_a_signal_right_after_attaching_still_ends_cleanly() -> None:
    """SIGINT sent the moment the "attached" line appears (before the event loop runs)."""
    for _ in range(3):
        r = RunProcess(str(bpf_object("tests/run_execsnoop")), "--no-maps")
        ids = r.wait_attached()
        rc, _ = r.stop(signal.SIGINT)
        assert rc == 0, "".join(r.err)
        assert gone(ids)


def test_a_signal_whose_exception_is_lost_still_ends_the_run(monkeypatch) -> None:
    """A SIGINT can land where CPython prints the handler's KeyboardInterrupt and drops it (a
    ``__del__``, an import's module-lock callback). The run ends anyway, at once, and cleanly:
    it does not go on to the end of its duration."""
    from pybpf import ObjectSpec
    from pybpf.run import Runner, RunOptions, run

    start = Runner.start
    attached: list[int] = []

    def start_then_lose_a_signal(self: Runner) -> None:
        start(self)
        attached.extend(p.id for p in self.obj.programs.values())

        class LosesIt:
            def __del__(self) -> None:
                signal.raise_signal(signal.SIGINT)  # the handler runs here; its raise is lost

        LosesIt()

    lost: list[type] = []
    monkeypatch.setattr(Runner, "start", start_then_lose_a_signal)
    monkeypatch.setattr(sys, "unraisablehook", lambda u: lost.append(u.exc_type))
    spec = ObjectSpec.from_file(str(bpf_object("tests/run_execsnoop")))
    t0 = time.monotonic()
    run(spec, RunOptions(duration=30, show_maps=False))
    assert time.monotonic() - t0 < 10
    assert lost == [KeyboardInterrupt]  # the exception was lost, not delivered
    assert attached and gone(attached)


def test_runner_reports_samples_a_full_perf_ring_lost() -> None:
    """The Python API: a one-page perf ring flooded while nobody reads it; what did not fit is
    reported as lost, and what fit plus what was lost is what was sent."""
    import io

    import pybpf
    from pybpf.run import Runner, RunOptions

    spec = pybpf.ObjectSpec.from_file(str(bpf_object("tests/run_sigsnoop")))
    spec.rodata["targ_pid"] = os.getpid()
    out, err = io.StringIO(), io.StringIO()
    opts = RunOptions(json=True, show_maps=False, perf_pages=1)
    # Each CPU has a ring of its own, and a ring reports what it lost only with its next record:
    # moved to another CPU mid-flood, the signals would fill two rings and one loss go untold.
    with on_one_cpu(), Runner(spec, opts, out=out, err=err) as runner:
        runner.start()
        for _ in range(1000):
            os.kill(os.getpid(), 0)
        runner.pump()
        os.kill(os.getpid(), 0)  # room again: the kernel writes its lost-record first
        runner.pump()
    lines = [json.loads(ln) for ln in out.getvalue().splitlines()]
    events = [d for d in lines if "event" in d]
    lost = sum(d["lost"] for d in lines if "lost" in d)
    assert 0 < len(events) < 1001 and lost > 0
    assert len(events) + lost == 1001
    assert all(e["event"]["tpid"] == os.getpid() and e["event"]["sig"] == 0 for e in events)


# --- maps at the end ------------------------------------------------------------------------------

# The maps of bpf/tests/run_maps.bpf.c whose elements user space cannot list, named in a note each;
# its cgroup array and XSK map (sockets and cgroups put there by user space) go unmentioned.
NOT_LISTED = {
    "queue": "queue",
    "stack": "stack",
    "bloom": "bloom_filter",
    "task_store": "task_storage",
    "sk_store": "sk_storage",
    "inode_store": "inode_storage",
    "cgrp_store": "cgrp_storage",
}


def need_cgroup_storage() -> None:
    """run_maps.bpf.c has a cgroup storage map, which Linux 6.2 brought: older kernels refuse
    it in one line (test_features checks such refusals)."""
    release = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
    if release < (6, 2):
        pytest.skip(f"run_maps.bpf.c has a cgroup storage map: Linux 6.2 (this is {release})")


def run_maps(*args: str) -> tuple[str, list[str]]:
    """run_maps.bpf.o run while this process calls getppid() three times: (stdout, stderr)."""
    need_cgroup_storage()
    r = RunProcess(str(bpf_object("tests/run_maps")), "--set", f"targ_tgid={os.getpid()}", *args)
    r.wait_attached()
    for _ in range(3):
        os.getppid()
    time.sleep(0.3)
    rc, out = r.stop()
    assert rc == 0, "".join(r.err)  # (the whole of stderr: its error is the last line)
    return out, r.err


def test_maps_user_space_cannot_list_are_named_and_the_others_printed() -> None:
    out, err = run_maps()
    for name, kind in NOT_LISTED.items():
        assert sum(f"pybpf: map {name} ({kind}) not shown: " in ln for ln in err) == 1, err
    assert not any("error" in ln or "cgroups" in ln or "xsks" in ln for ln in err), err
    assert "map calls (hash, 1 entry):\n  key=0 value=3\n" in out
    assert "map inner_a (array, 1 entry):\n  key=0 value=42\n" in out
    # the array's other indexes hold zero bytes, though their enum reads as its name, ST_IDLE
    assert (
        "map slots (array, 8 entries):\n  key=1 state=ST_RUNNING calls=3\n"
        "  (7 elements of zeros not shown)\n"
    ) in out
    # an array of maps holds the ids of its inner maps (the object's inner_a and inner_b)
    assert re.search(r"^map outer \(array_of_maps, 2 entries\):\n  key=0 map_id=\d+\n"
                     r"  key=1 map_id=\d+$", out, re.M), out  # fmt: skip


def test_events_no_struct_of_the_object_fits_print_as_hex() -> None:
    """run_maps' records have the size of a kernel type CO-RE put in its BTF, and of no struct
    of its own: hex, not that kernel type."""
    out, err = run_maps("--json", "--no-maps")
    events = [json.loads(ln) for ln in out.splitlines()]
    record = (struct.pack("=I", 5) + b"pybpf").hex().ljust(128, "0")
    assert [e.get("data") for e in events] == [record] * 3
    assert any("(64 bytes): the object has no struct of its own of that size" in ln for ln in err)
    out, err = run_maps("--json", "--no-maps", "--event-type", "text_msg")
    assert [json.loads(ln)["event"] for ln in out.splitlines()] == [{"len": 5, "text": "pybpf"}] * 3
    assert sum("longer than struct text_msg (4 bytes)" in ln for ln in err) == 1


def test_map_in_map_in_bpftool_format_is_bpftools_hex() -> None:
    out, _ = run_maps("--map-format", "bpftool")
    block = out.split("map outer (array_of_maps):\n", 1)[1].split("map ", 1)[0]
    assert re.fullmatch(
        r"key: 00 00 00 00  value: ([0-9a-f]{2} ){3}[0-9a-f]{2}\n"
        r"key: 01 00 00 00  value: ([0-9a-f]{2} ){3}[0-9a-f]{2}\n"
        r"Found 2 elements\n",
        block,
    ), block


def test_one_map_that_cannot_be_read_does_not_cut_off_the_others(monkeypatch) -> None:
    need_cgroup_storage()
    import io

    import pybpf
    from pybpf.errors import BPFError, SyscallError
    from pybpf.maps import Map
    from pybpf.run import Runner, RunOptions

    items = Map.items

    def failing(m: Map):
        if m.name == "calls":
            raise SyscallError("cannot look up an element of map 'calls'", errno.EIO)
        return items(m)

    monkeypatch.setattr(Map, "items", failing)
    spec = pybpf.ObjectSpec.from_file(str(bpf_object("tests/run_maps")))
    spec.rodata["targ_tgid"] = os.getpid()
    out, err = io.StringIO(), io.StringIO()
    runner = Runner(spec, RunOptions(), out=out, err=err)
    with pytest.raises(BPFError, match=r"^cannot look up an element of map 'calls': EIO"), runner:
        runner.start()
        os.getppid()
    printed = re.findall(r"^map (\S+) ", out.getvalue(), re.M)
    assert printed == ["inner_a", "inner_b", "outer", "slots"]  # all but calls, in order
    assert runner.obj is None  # closed all the same


def test_a_ctrl_c_while_the_first_event_is_decoded_loses_no_event(monkeypatch) -> None:
    """The first record of a size is decoded after a search of the object's BTF and DWARF,
    which takes seconds on a slow machine: a Ctrl-C then must not lose the records already
    taken from the ring. They are printed as the run finishes, each once."""
    need_cgroup_storage()
    import io

    import pybpf
    from pybpf.events import EventDecoder
    from pybpf.run import Runner, RunOptions

    decode = EventDecoder.decode
    interrupted = []

    def slow_first(self, data: bytes):
        if not interrupted:
            interrupted.append(len(data))
            raise KeyboardInterrupt  # the Ctrl-C, arriving while the search runs
        return decode(self, data)

    monkeypatch.setattr(EventDecoder, "decode", slow_first)
    spec = pybpf.ObjectSpec.from_file(str(bpf_object("tests/run_maps")))
    spec.rodata["targ_tgid"] = os.getpid()
    out, err = io.StringIO(), io.StringIO()
    runner = Runner(spec, RunOptions(json=True, show_maps=False), out=out, err=err)
    with runner:
        runner.start()
        for _ in range(3):
            os.getppid()
        with pytest.raises(KeyboardInterrupt):
            runner.pump()
    assert interrupted == [64]
    record = (struct.pack("=I", 5) + b"pybpf").hex().ljust(128, "0")
    assert [json.loads(ln)["data"] for ln in out.getvalue().splitlines()] == [record] * 3


# --- kprobes (the kernel matrix's guests have them; this machine's kernel has none) ------------

HAS_KPROBES = Path("/sys/bus/event_source/devices/kprobe").exists()


def test_kprobe_events_where_the_kernel_has_kprobes_one_line_where_not(tmp_path: Path) -> None:
    obj = str(bpf_object("tests/run_kprobe"))
    if not HAS_KPROBES:
        res = run(sys.executable, "-m", "pybpf", "run", obj, check=False, cwd=ROOT)
        assert res.returncode == 1 and res.stdout == ""
        assert res.stderr.splitlines() == [
            "pybpf: error: cannot attach program 'unlink_entry' to kprobe do_unlinkat: ENOTSUP "
            "(Operation not supported): this kernel has no kprobe support (CONFIG_KPROBE_EVENTS)"
        ]
        return
    r = RunProcess(obj, "--json", "--set", f"targ_tgid={os.getpid()}")
    ids = r.wait_attached(timeout=scaled(20))
    victim = tmp_path / "pybpf-run-unlink-me"
    victim.write_text("x")
    dir_fd = os.open(tmp_path, os.O_RDONLY)
    try:  # unlinkat(dir, NAME): the kernel's struct filename holds NAME as given
        os.unlink(victim.name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    time.sleep(scaled(0.5))
    rc, out = r.stop(timeout=scaled(20))
    assert rc == 0, "".join(r.err)  # (the whole of stderr: its error is the last line)
    events, _, maps = json_lines(out)
    assert [e["event"] for e in events] == [
        {"pid": os.getpid(), "filename": victim.name},
    ]
    rets = {e["key"]: e["value"] for e in maps["last_ret"]["entries"]}
    assert rets == {os.getpid(): 0}
    assert gone(ids, timeout=scaled(5))
