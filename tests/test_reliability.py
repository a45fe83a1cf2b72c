"""xdptcp's promises to a user, checked for real on test hosts.

Every way a capture ends — a signal, ``-c``, a closed pipe, a failing output file, the interface
deleted, ``kill -9`` — leaves no XDP program on the interface (as ``ip -d link`` reports it) and no
program in the kernel; a program xdptcp did not attach is never touched without ``--replace``;
the exit summary counts every matched packet exactly, even when the ring overflows; mistakes in
the invocation get one line and the documented exit status; files are written safely.

Frames are replayed with ``tcpreplay`` from inside the test host's namespace, so they arrive on
the outer end of the veth pair, where xdptcp attaches.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, bpf_object, need_tool, run, scaled
from tests.hosts import VethPair, make_veth
from tests.traffic import tcp_frame, varied_pcap, write_pcap

pytestmark = pytest.mark.system
XDPTCP = (sys.executable, "-m", "xdptcp")
SPORT, DPORT = 41000, 5201


# --- helpers ---------------------------------------------------------------------------------


class Xdptcp:
    """A running ``xdptcp``: stderr collected line by line, waited on with deadlines."""

    def __init__(self, *args: str, stdout=subprocess.PIPE, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            (*XDPTCP, *args),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd or ROOT,
            start_new_session=True,  # a signal in the test never reaches the tool by accident
        )
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.err)

    def wait_for(self, text: str, timeout: float = scaled(15.0)) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.err):
                return
            if self.proc.poll() is not None:
                self._reader.join(2)
                if any(text in line for line in self.err):
                    return
                pytest.fail(f"xdptcp exited {self.proc.returncode} before '{text}':\n{self.stderr}")
            time.sleep(0.02)
        pytest.fail(f"no '{text}' from xdptcp within {timeout} s:\n{self.stderr}")

    def attached(self) -> Xdptcp:
        self.wait_for("xdptcp: capturing on")
        return self

    def finish(self, timeout: float = scaled(20.0)) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"xdptcp did not exit within {timeout} s:\n{self.stderr}")
        self._reader.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def summary(stderr: str) -> dict[str, int]:
    """The exit summary as numbers: captured, received, dropped, unshown."""
    keys = {
        "captured": r"(\d+) packets? captured",
        "received": r"(\d+) packets? received by filter",
        "dropped": r"(\d+) packets? dropped by kernel \(ring buffer full\)",
        "unshown": r"(\d+) packets? matched but not shown",
    }
    out = {}
    for key, pattern in keys.items():
        m = re.search(pattern, stderr)
        out[key] = int(m.group(1)) if m else 0
    assert re.search(keys["captured"], stderr), f"no summary:\n{stderr}"
    return out


def xdp_on(iface: str, netns: str | None = None) -> dict | None:
    """What ``ip -d link`` says is attached at XDP on ``iface`` (None: nothing)."""
    ns = ("-n", netns) if netns else ()
    out = run("ip", *ns, "-j", "-d", "link", "show", "dev", iface).stdout
    return json.loads(out)[0].get("xdp")


def attached_prog(iface: str) -> tuple[int, str]:
    xdp = xdp_on(iface)
    assert xdp is not None, f"nothing attached on {iface}"
    return xdp["prog"]["id"], xdp["prog"]["name"]


def prog_exists(prog_id: int) -> bool:
    return run("bpftool", "prog", "show", "id", str(prog_id), check=False).returncode == 0


def assert_nothing_left(iface: str, prog_id: int) -> None:
    """No XDP program on the interface, and our program freed by the kernel."""
    assert xdp_on(iface) is None, f"XDP program left on {iface}: {xdp_on(iface)}"
    assert_freed(prog_id)


def assert_freed(prog_id: int) -> None:
    for _ in range(int(scaled(50))):  # the kernel frees a program after an RCU grace period
        if not prog_exists(prog_id):
            return
        time.sleep(0.05)
    pytest.fail(f"program id {prog_id} still exists after xdptcp exited")


def one_line(stderr: str, *words: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    assert lines[0].startswith("xdptcp: "), lines[0]
    assert "Traceback" not in stderr and "internal error" not in stderr
    for w in words:
        assert w in lines[0], f"'{w}' not in {lines[0]!r}"
    return lines[0]


def frames(pair: VethPair, count: int, payload: bytes = b"") -> list[bytes]:
    """``count`` distinct TCP segments from the inner host to the outer one."""
    return [
        tcp_frame(
            pair.inner_ip,
            pair.outer_ip,
            SPORT,
            DPORT,
            seq=1000 + i,
            ack=1,
            flags="PA",
            payload=payload,
        )  # fmt: skip
        for i in range(count)
    ]


def replay(pair: VethPair, pcap: Path, *extra: str) -> int:
    """tcpreplay inside the test host's namespace; returns the number of frames it sent."""
    need_tool("tcpreplay")
    res = pair.in_ns("tcpreplay", "-q", "-i", pair.inner, *extra, str(pcap))
    m = re.search(r"Successful packets:\s+(\d+)", res.stdout + res.stderr)
    assert m, res.stdout + res.stderr
    return int(m.group(1))


def replay_until_it_exits(
    x: Xdptcp, pair: VethPair, pcap: Path, tries: int, pause: float = 0.0
) -> int:
    """Replays ``pcap`` (up to ``tries`` times, ``pause`` apart) until xdptcp exits of its own
    accord; its exit status."""
    for _ in range(tries):
        replay(pair, pcap)
        if x.proc.poll() is not None:
            break
        time.sleep(pause)
    return x.finish()


def replay_until_a_write_fails(x: Xdptcp, pair: VethPair, pcap: Path, tries: int) -> int:
    """Replays ``pcap`` until xdptcp, attached, exits with status 1 (killed whatever happens);
    the id of the program it had attached."""
    try:
        prog_id, _ = attached_prog(pair.outer)
        assert replay_until_it_exits(x, pair, pcap, tries=tries) == 1
    finally:
        x.kill()
    return prog_id


def assert_write_error_and_detached(x: Xdptcp, pair: VethPair, prog_id: int, error: str) -> None:
    """``error`` (``output: strerror``) was said once, as ``xdptcp: error``, without a
    traceback, and the program is gone from the interface and the kernel."""
    strerror = error.rsplit(": ", 1)[1]
    errors = [line for line in x.err if strerror in line]
    assert errors == [f"xdptcp: {error}"], x.stderr
    assert "Traceback" not in x.stderr and "internal error" not in x.stderr
    assert_nothing_left(pair.outer, prog_id)


def wait_lines(proc: subprocess.Popen, n: int, timeout: float = scaled(10.0)) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    return lines


@pytest.fixture
def pair():
    p = make_veth("rl")
    try:
        yield p
    finally:
        p.remove()


@pytest.fixture
def pcap5(tmp_path: Path, pair: VethPair) -> Path:
    path = tmp_path / "five.pcap"
    write_pcap(path, frames(pair, 5))
    return path


# --- nothing left behind -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name
)
def test_signal_ends_the_capture_and_detaches(pair, pcap5, sig) -> None:
    x = Xdptcp("-i", pair.outer).attached()
    try:
        prog_id, name = attached_prog(pair.outer)
        assert name == "xdp_capture_all"  # the program of a capture without a filter
        assert replay(pair, pcap5) == 5
        lines = wait_lines(x.proc, 5)
        assert len(lines) == 5 and all(f".{SPORT} > " in line for line in lines), lines
        x.proc.send_signal(sig)
        assert x.finish() == 0
    finally:
        x.kill()
    assert summary(x.stderr)["captured"] == 5
    assert_nothing_left(pair.outer, prog_id)


# A child that installs xdptcp's handlers as the capture does, then takes one
# SIGINT whose handling is interrupted by a second one at its Nth function call: Ctrl-C pressed
# twice, the second landing inside the first handler, at each place it can land in turn.
_SECOND_SIGNAL = """
import signal, sys
from xdptcp.process import install_signal_handlers
stop = install_signal_handlers()
handler = signal.getsignal(signal.SIGINT)
calls = 0
def second(frame, event, arg):
    global calls
    if event in ("call", "c_call"):
        calls += 1
        if calls == int(sys.argv[1]):
            signal.raise_signal(signal.SIGINT)
def first(signum, frame):
    signal.signal(signal.SIGINT, handler)  # the second signal goes to xdptcp's handler
    sys.setprofile(second)
    try:
        handler(signum, frame)
    finally:
        sys.setprofile(None)
signal.signal(signal.SIGINT, first)
signal.raise_signal(signal.SIGINT)
print(stop.is_set(), calls)
"""


def test_a_second_signal_while_the_first_is_handled_still_stops_the_capture() -> None:
    """The handler sets the capture loop's flag without a lock: a second signal that interrupts
    the first handler anywhere cannot wait for a lock the first holds (a threading.Event did:
    xdptcp hung, attached, until killed)."""
    n, calls = 1, 1
    while n <= calls:
        res = subprocess.run([sys.executable, "-c", _SECOND_SIGNAL, str(n)], cwd=ROOT,
                             capture_output=True, text=True, timeout=scaled(20))  # fmt: skip
        assert res.returncode == 0, res.stderr
        is_set, calls = res.stdout.split()
        assert is_set == "True", (n, res.stdout)
        calls, n = int(calls), n + 1


def test_count_reached_detaches_and_accounts_for_the_rest(pair, tmp_path) -> None:
    pcap = tmp_path / "ten.pcap"
    write_pcap(pcap, frames(pair, 10))
    x = Xdptcp("-i", pair.outer, "-c", "3").attached()
    try:
        prog_id, _ = attached_prog(pair.outer)
        assert replay(pair, pcap) == 10
        assert x.finish() == 0
        out = x.proc.stdout.read().splitlines()
    finally:
        x.kill()
    assert len(out) == 3
    s = summary(x.stderr)
    assert s["captured"] == 3
    # The tool may stop before the last frames reach the program; what it saw adds up exactly.
    assert s["captured"] + s["dropped"] + s["unshown"] == s["received"] <= 10
    assert_nothing_left(pair.outer, prog_id)


def test_closed_pipe_ends_the_capture_quietly(pair, pcap5) -> None:
    head = subprocess.Popen(("head", "-1"), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    x = Xdptcp("-i", pair.outer, stdout=head.stdin)
    head.stdin.close()  # only head holds the pipe's read end now
    try:
        x.attached()
        prog_id, _ = attached_prog(pair.outer)
        # The first write fills head; a later one finds the pipe closed.
        assert replay_until_it_exits(x, pair, pcap5, tries=20, pause=0.1) == 0
    finally:
        x.kill()
        head.wait(5)
    assert f".{SPORT} > " in head.stdout.read().decode()
    assert "Traceback" not in x.stderr and "Broken pipe" not in x.stderr
    s = summary(x.stderr)
    assert s["captured"] >= 1
    # The records of the write that found the pipe closed are not lost from the count either.
    assert s["captured"] + s["dropped"] + s["unshown"] == s["received"], x.stderr
    assert_nothing_left(pair.outer, prog_id)


def test_writer_error_on_dev_full_is_one_line_and_detaches(pair, pcap5) -> None:
    x = Xdptcp("-i", pair.outer, "-w", "/dev/full").attached()
    try:
        prog_id, _ = attached_prog(pair.outer)
        replay(pair, pcap5)
        assert x.finish() == 1
    finally:
        x.kill()
    errors = [line for line in x.err if "No space left on device" in line]
    assert errors == ["xdptcp: /dev/full: No space left on device"], x.stderr
    assert "Traceback" not in x.stderr and "internal error" not in x.stderr
    assert_nothing_left(pair.outer, prog_id)


def test_text_output_to_a_full_device_is_one_line_and_detaches(pair, pcap5) -> None:
    with open("/dev/full", "w") as full:
        x = Xdptcp("-i", pair.outer, "--json", stdout=full).attached()
    try:
        prog_id, _ = attached_prog(pair.outer)
        replay(pair, pcap5)
        assert x.finish() == 1
    finally:
        x.kill()
    errors = [line for line in x.err if "No space left on device" in line]
    assert errors == ["xdptcp: standard output: No space left on device"], x.stderr
    assert "Traceback" not in x.stderr and "internal error" not in x.stderr
    assert_nothing_left(pair.outer, prog_id)


def test_full_filesystem_is_one_line_and_detaches(pair, tmp_path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    run("mount", "-t", "tmpfs", "-o", "size=128k", "xdptcp-test", str(mnt))
    try:
        pcap = tmp_path / "big.pcap"
        write_pcap(pcap, frames(pair, 200, payload=bytes(1200)))
        x = Xdptcp("-i", pair.outer, "-s", "0", "-w", str(mnt / "out.pcap")).attached()
        prog_id = replay_until_a_write_fails(x, pair, pcap, tries=10)
    finally:
        run("umount", str(mnt), check=False)
    assert_write_error_and_detached(
        x, pair, prog_id, f"{mnt / 'out.pcap'}: No space left on device"
    )


@pytest.mark.parametrize("args", [(), ("--json",), ("-c", "1000"), ("-w", "-")],
                         ids=["text", "json", "count", "pcap"])  # fmt: skip
def test_an_io_error_on_standard_output_names_it_and_detaches(pair, pcap5, args) -> None:
    """Any error a write gives is named, not only a full disk: here EIO, from a terminal whose
    other end closed under the capture. Text lines (walked in one pass, or one by one up to -c)
    and a capture file on stdout."""
    master, slave = os.openpty()
    try:
        x = Xdptcp("-i", pair.outer, *args, stdout=slave).attached()
    finally:
        os.close(slave)
    os.close(master)
    prog_id = replay_until_a_write_fails(x, pair, pcap5, tries=5)
    assert_write_error_and_detached(x, pair, prog_id, "standard output: Input/output error")


def test_interface_deleted_while_capturing_stops_with_an_error(pair) -> None:
    x = Xdptcp("-i", pair.outer).attached()
    try:
        prog_id, _ = attached_prog(pair.outer)
        run("ip", "link", "del", pair.outer)
        assert x.finish(timeout=scaled(10)) == 1
    finally:
        x.kill()
    gone = [line for line in x.err if "went away" in line]
    assert gone == [f"xdptcp: {pair.outer}: the interface went away; capture stopped"], x.stderr
    assert "Traceback" not in x.stderr
    assert_freed(prog_id)


def test_demo_leaves_no_hosts_and_no_programs() -> None:
    res = run(*XDPTCP, "--demo", check=False, timeout=scaled(90), cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "Flags [S]" in res.stdout and "test hosts removed" in res.stderr
    names = re.findall(r"(xdptcp-demo-\d+-[ab])", res.stderr)
    assert names, res.stderr
    after = run("ip", "netns", "list").stdout
    assert not any(n in after for n in names), after
    assert not [line for line in run("ip", "-o", "link").stdout.splitlines() if "xdpdemo" in line]


# --- a write that fails names what it was writing (-r) -------------------------------------------
# The kernel's answer to a failed write says what went wrong, never where: each writer names its
# own output. Three ways a write fails: a full device (ENOSPC), the file size limit (EFBIG,
# RLIMIT_FSIZE) and a terminal whose other end is closed (EIO, which no guess from the errno
# could take for a write error); and a closed pipe, which ends the output quietly.


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> dict[str, Path]:
    """The varied capture as classic pcap (read mapped, copied without decoding) and as pcapng
    (read record by record, each record written by the writer)."""
    from xdptcp.pcap import PcapngWriter
    from xdptcp.readfile import EthernetFrames

    d = tmp_path_factory.mktemp("captures")
    varied_pcap(d / "v.pcap")
    with PcapngWriter(str(d / "v.pcapng")) as w:
        w.write_batch((ts, "eth0", f, n, 0) for ts, f, n in EthernetFrames(str(d / "v.pcap")))
    return {"pcap": d / "v.pcap", "pcapng": d / "v.pcapng"}


def file_size_limit() -> None:
    """preexec_fn: files may grow to 4 KiB, and a write beyond fails with EFBIG (Python ignores
    SIGXFSZ, so the write returns the error rather than the signal ending the process)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def read_file(*args: str, stdout, stdin=None, preexec_fn=None) -> subprocess.Popen:
    return subprocess.Popen(
        (*XDPTCP, *args), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT,
        preexec_fn=preexec_fn,
    )  # fmt: skip


def one_write_error(proc: subprocess.Popen, stdin: bytes | None = None) -> str:
    _, err = proc.communicate(stdin, timeout=scaled(60))
    assert proc.returncode == 1, err
    return one_line(err.decode())


STDOUT_OUTPUTS = {"text": (), "json": ("--json",), "pcap": ("-w", "-")}


@pytest.mark.parametrize("source", ["pcap", "pcapng"])
@pytest.mark.parametrize("output", STDOUT_OUTPUTS)
@pytest.mark.parametrize("failure", ["full", "too large", "io error"])
def test_a_failed_write_to_standard_output_names_it(captures, tmp_path, source, output, failure):
    args = ("-r", str(captures[source]), *STDOUT_OUTPUTS[output])
    if failure == "full":
        with open("/dev/full", "wb") as full:
            proc = read_file(*args, stdout=full)
        why = "No space left on device"
    elif failure == "too large":
        with open(tmp_path / "out", "wb") as out:
            proc = read_file(*args, stdout=out, preexec_fn=file_size_limit)
        why = "File too large"
    else:
        master, slave = os.openpty()
        os.close(master)
        proc = read_file(*args, stdout=slave)
        os.close(slave)
        why = "Input/output error"
    assert one_write_error(proc) == f"xdptcp: standard output: {why}"


@pytest.mark.parametrize("source", ["pcap", "pcapng"])
@pytest.mark.parametrize("failure", ["full", "too large"])
def test_a_failed_write_to_the_w_file_names_it(captures, tmp_path, source, failure) -> None:
    out = "/dev/full" if failure == "full" else str(tmp_path / "out.pcap")
    limit = file_size_limit if failure == "too large" else None
    proc = read_file("-r", str(captures[source]), "-w", out, stdout=subprocess.DEVNULL,
                     preexec_fn=limit)  # fmt: skip
    why = "No space left on device" if failure == "full" else "File too large"
    assert one_write_error(proc) == f"xdptcp: {out}: {why}"


def test_an_io_error_writing_the_w_file_names_it(captures) -> None:
    """-w names a terminal (opened by xdptcp, so the test closes its other end once it is open);
    the capture comes on standard input, its records once the terminal is dead: every write
    fails with EIO."""
    master, slave = os.openpty()
    tty = os.ttyname(slave)
    proc = read_file("-r", "-", "-w", tty, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    capture = captures["pcap"].read_bytes()
    try:
        proc.stdin.write(capture[:24])  # the file header: read before the output is opened,
        proc.stdin.flush()  # as tcpdump reads it, then the writer opens the file
        deadline = time.monotonic() + scaled(30)
        while not opened(proc.pid, tty):
            assert proc.poll() is None and time.monotonic() < deadline, f"{tty} not opened"
            time.sleep(0.01)
    finally:
        os.close(slave)
        os.close(master)
    assert one_write_error(proc, capture[24:]) == f"xdptcp: {tty}: Input/output error"


def opened(pid: int, path: str) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd) == path for fd in fds.iterdir())
    except FileNotFoundError:  # a descriptor closed while listed
        return False


@pytest.mark.parametrize("output", STDOUT_OUTPUTS)
def test_a_closed_pipe_ends_r_output_quietly(captures, output) -> None:
    """``xdptcp -r F | head`` when head has gone: EPIPE is the reader's end, not an error."""
    r, w = os.pipe()
    os.close(r)
    proc = read_file("-r", str(captures["pcap"]), *STDOUT_OUTPUTS[output], stdout=w)
    os.close(w)
    _, err = proc.communicate(timeout=scaled(60))
    assert (proc.returncode, err) == (0, b"")


# --- kill -9, stale programs, somebody else's program ------------------------------------------


def killed_capture(pair: VethPair, *expression: str) -> int:
    """An xdptcp killed with SIGKILL: its netlink attachment outlives it. Returns the prog id.
    With a filter ``expression`` the XDP program is the filtered one, without, the other."""
    x = Xdptcp("-i", pair.outer, *expression).attached()
    prog_id, _ = attached_prog(pair.outer)
    x.proc.send_signal(signal.SIGKILL)
    x.finish()
    name = "xdp_capture" if expression else "xdp_capture_all"
    assert attached_prog(pair.outer) == (prog_id, name)
    return prog_id


@pytest.mark.kmatrix
def test_bpf_link_goes_with_a_killed_process(pair) -> None:
    """--link: the kernel detaches when the last fd of the link closes, even after kill -9."""
    x = Xdptcp("-i", pair.outer, "--link").attached()
    prog_id, name = attached_prog(pair.outer)
    assert name == "xdp_capture_all"
    x.proc.send_signal(signal.SIGKILL)
    x.finish()
    assert_nothing_left(pair.outer, prog_id)


@pytest.mark.kmatrix
def captures_five_and_ends_clean(x: Xdptcp, pair: VethPair, pcap5, prog_id: int) -> None:
    """The five frames replayed into a running ``-c 5`` capture: it captures them all, exits 0
    and leaves nothing of ours on the interface (``prog_id`` freed)."""
    try:
        replay(pair, pcap5)
        assert x.finish() == 0
    finally:
        x.kill()
    assert summary(x.stderr)["captured"] == 5
    assert_nothing_left(pair.outer, prog_id)


@pytest.mark.parametrize("expression", [(), ("tcp",)], ids=["no-filter", "filter"])
def test_next_run_removes_a_stale_program_with_a_message(pair, pcap5, expression) -> None:
    stale = killed_capture(pair, *expression)
    x = Xdptcp("-i", pair.outer, "-c", "5").attached()
    try:
        assert any(f"removed a stale xdptcp program (id {stale})" in line for line in x.err), (
            x.stderr
        )
        new_id, _ = attached_prog(pair.outer)
        assert new_id != stale
    except BaseException:
        x.kill()
        raise
    captures_five_and_ends_clean(x, pair, pcap5, new_id)
    assert not prog_exists(stale)


@pytest.mark.kmatrix
def test_a_running_capture_is_not_taken_for_a_stale_one(pair, pcap5) -> None:
    """A second xdptcp on the interface of a running one finds a program of ours that a live
    process holds: it refuses (naming that process) and leaves it, as --detach does; the first
    capture goes on seeing what arrives."""
    first = Xdptcp("-i", pair.outer, "-Q", "in", "-c", "5").attached()
    try:
        prog_id, _ = attached_prog(pair.outer)
        for args in (("-i", pair.outer, "-c", "1"), ("--detach", "-i", pair.outer)):
            res = run(*XDPTCP, *args, check=False, cwd=ROOT, timeout=scaled(30))
            assert res.returncode == 1, res.stderr
            line = one_line(res.stderr, f"id {prog_id}", f"pid {first.proc.pid}")
            assert "stale" not in line and "removed" not in line, line
            assert attached_prog(pair.outer) == (prog_id, "xdp_capture_all")
    except BaseException:
        first.kill()
        raise
    captures_five_and_ends_clean(first, pair, pcap5, prog_id)


def test_detach_removes_a_stale_program(pair) -> None:
    stale = killed_capture(pair)
    res = run(*XDPTCP, "--detach", "-i", pair.outer, check=False, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    one_line(res.stderr, pair.outer, f"removed xdptcp program id {stale}")
    assert_nothing_left(pair.outer, stale)


@pytest.fixture
def foreign(pair):
    """Somebody else's XDP program (xdp_empty, attached by iproute2 in native mode)."""
    obj = bpf_object("tests/xdp_empty")
    # iproute2's tc/ and xdp/ directories in bpffs are removed by conftest's fixture.
    run("ip", "link", "set", "dev", pair.outer, "xdpdrv", "obj", str(obj), "sec", "xdp")
    try:
        prog_id, name = attached_prog(pair.outer)
        assert name == "xdp_empty"
        yield prog_id
    finally:
        run("ip", "link", "set", "dev", pair.outer, "xdpdrv", "off", check=False)


def egress_programs(iface: str) -> list:
    """What bpftool sees on the interface's tc hooks (tcx links and clsact filters)."""
    shown = json.loads(run("bpftool", "-j", "net", "show", "dev", iface).stdout)
    return [entry for part in shown for entry in part.get("tc", [])]


@pytest.mark.parametrize("tc_mode", ["tcx", "clsact"])
def test_someone_elses_program_is_never_touched(pair, foreign, tc_mode) -> None:
    """The egress hook is attached in a thread while the XDP program is verified and attached:
    when XDP is refused, what that thread attached is gone too."""
    argv = (*XDPTCP, "-i", pair.outer, "--tc", tc_mode, "-c", "1")
    res = run(*argv, check=False, timeout=scaled(30), cwd=ROOT)
    assert res.returncode == 1
    one_line(res.stderr, "already has an XDP program attached", str(foreign), "--replace")
    assert attached_prog(pair.outer) == (foreign, "xdp_empty")
    assert egress_programs(pair.outer) == []
    assert "clsact" not in run("tc", "qdisc", "show", "dev", pair.outer).stdout
    res = run(*XDPTCP, "--detach", "-i", pair.outer, check=False, cwd=ROOT)
    assert res.returncode == 1
    one_line(res.stderr, "not xdptcp's", "not touching it")
    assert attached_prog(pair.outer) == (foreign, "xdp_empty")


def test_replace_captures_then_puts_the_program_back(pair, foreign, pcap5) -> None:
    x = Xdptcp("-i", pair.outer, "--replace", "-c", "5").attached()
    try:
        assert any("put back on exit" in line for line in x.err), x.stderr
        ours, name = attached_prog(pair.outer)
        assert name == "xdp_capture_all"
        replay(pair, pcap5)
        assert x.finish() == 0
    finally:
        x.kill()
    assert summary(x.stderr)["captured"] == 5
    assert attached_prog(pair.outer) == (foreign, "xdp_empty")
    assert xdp_on(pair.outer)["mode"] == 1  # XDP_ATTACHED_DRV: back in the mode it had
    assert_freed(ours)


def test_pinned_foreign_program_is_left_alone(pair, tmp_path) -> None:
    """Loaded with ``pybpf load --pin``, attached by ``ip ... xdp pinned``: not ours."""
    pin_dir = Path(f"/sys/fs/bpf/pybpf-rel-{os.getpid()}")
    res = run(sys.executable, "-m", "pybpf", "load", str(bpf_object("tests/globals")), "--pin",
              str(pin_dir), check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    try:
        pinned = next(pin_dir.iterdir())
        run("ip", "link", "set", "dev", pair.outer, "xdpgeneric", "pinned", str(pinned))
        foreign_id, name = attached_prog(pair.outer)
        res = run(*XDPTCP, "-i", pair.outer, check=False, timeout=scaled(30), cwd=ROOT)
        assert res.returncode == 1
        one_line(res.stderr, "already has an XDP program attached", "--replace")
        assert attached_prog(pair.outer) == (foreign_id, name)
    finally:
        run("ip", "link", "set", "dev", pair.outer, "xdpgeneric", "off", check=False)
        run("rm", "-rf", str(pin_dir), check=False)


# --- exact counts --------------------------------------------------------------------------------


@pytest.fixture
def flood(tmp_path: Path, pair: VethPair) -> Path:
    path = tmp_path / "flood.pcap"
    write_pcap(path, frames(pair, 3000, payload=bytes(100)))
    return path


@pytest.mark.parametrize("count", [None, 5], ids=["all", "c5"])
@pytest.mark.kmatrix
def test_full_ring_counts_add_up_exactly(pair, flood, count) -> None:
    """One page of ring against a tcpreplay flood: captured + dropped (+ unshown) == sent."""
    extra = ("-c", str(count)) if count else ()
    x = Xdptcp("-i", pair.outer, "--ring-size", "4096", *extra, stdout=subprocess.DEVNULL)
    try:
        x.attached()
        sent = replay(pair, flood, "--topspeed")
        assert sent == 3000
        time.sleep(scaled(0.5))
        if count is None:
            x.proc.send_signal(signal.SIGINT)
        assert x.finish() == 0
    finally:
        x.kill()
    s = summary(x.stderr)
    print(f"sent {sent}: {s}")  # the figures, for -s runs
    assert s["dropped"] > 0, f"the flood never filled one page of ring: {x.stderr}"
    assert s["captured"] + s["dropped"] + s["unshown"] == s["received"], x.stderr
    if count:
        # -c detaches as soon as it is reached: the rest of the flood is never seen.
        assert s["captured"] == count and s["received"] <= sent
    else:
        assert s["received"] == sent, x.stderr  # every frame is TCP: each reached the filter
        assert s["unshown"] == 0


# --- bad invocations ---------------------------------------------------------------------------


@pytest.fixture
def readable_install():
    """The project as a user without privileges can import it: the checkout (and its venv) may
    sit in a directory only root can enter (a `mktemp -d` clone is 0700), so the packages and
    their two dependencies are copied to a world-readable directory for the run."""
    import construct
    import elftools

    stage = tempfile.mkdtemp(prefix="pybpf-nobody-", dir="/tmp")
    try:
        os.chmod(stage, 0o755)
        for pkg in (ROOT / "pybpf", ROOT / "xdptcp", Path(construct.__file__).parent,
                    Path(elftools.__file__).parent):  # fmt: skip
            shutil.copytree(pkg, os.path.join(stage, pkg.name),
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        for dirpath, dirnames, filenames in os.walk(stage):
            for name in dirnames:
                os.chmod(os.path.join(dirpath, name), 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        python = os.path.realpath(sys.executable)  # the base interpreter, not the venv's link
        env = dict(os.environ, PYTHONPATH=stage, PYTHONDONTWRITEBYTECODE="1")
        yield python, env
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@pytest.mark.parametrize(
    "drop",
    [
        ("setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"),
        ("setpriv", "--inh-caps", "-all", "--bounding-set", "-all"),
    ],
    ids=["nobody", "no-capabilities"],
)
def test_without_privileges_one_line_says_what_is_needed(drop, readable_install) -> None:
    python, env = readable_install
    res = run(
        *drop,
        python,
        "-m",
        "xdptcp",
        "-i",
        "lo",
        "-c",
        "1",
        check=False,
        timeout=scaled(30),
        cwd="/",
        env=env,
    )
    assert res.returncode == 1, res.stderr
    one_line(res.stderr, "EPERM", "needs root")
    assert xdp_on("lo") is None


def test_unknown_interface() -> None:
    res = run(*XDPTCP, "-i", "pyb-no-such0", check=False, cwd=ROOT)
    assert res.returncode == 1
    one_line(res.stderr, "no such interface 'pyb-no-such0'", "xdptcp -D")


def test_the_any_pseudo_interface_is_explained() -> None:
    """tcpdump's ``-i any`` has no XDP counterpart: the error says what to give instead."""
    res = run(*XDPTCP, "-i", "any", check=False, cwd=ROOT)
    assert res.returncode == 1
    one_line(res.stderr, "no interface 'any'", "each interface on its own", "-i, once each")


def test_interface_down_attaches_and_says_so(pair, pcap5) -> None:
    run("ip", "link", "set", pair.outer, "down")
    x = Xdptcp("-i", pair.outer, "-c", "5").attached()
    try:
        assert any(f"{pair.outer} is down" in line and "ip link set" in line for line in x.err)
        prog_id, _ = attached_prog(pair.outer)
        run("ip", "link", "set", pair.outer, "up")
        # Until the link is up on both ends and frames get through.
        assert replay_until_it_exits(x, pair, pcap5, tries=20, pause=0.2) == 0
    finally:
        x.kill()
    assert summary(x.stderr)["captured"] == 5
    assert_nothing_left(pair.outer, prog_id)


def test_loopback_captures_in_generic_mode() -> None:
    """lo has no native XDP: auto mode falls back to skb and sees a real loopback connection."""
    import socket

    x = Xdptcp("-i", "lo", "-c", "1", "tcp and host 127.0.0.1").attached()
    try:
        assert "lo (in: skb XDP)" in x.stderr  # lo: the arriving copy only, as tcpdump
        srv = socket.create_server(("127.0.0.1", 0))
        with srv, socket.create_connection(srv.getsockname()):
            assert x.finish() == 0
    finally:
        x.kill()
    out = x.proc.stdout.read()
    assert "IP 127.0.0.1." in out and "Flags [S]" in out, out
    assert xdp_on("lo") is None
    res = run(*XDPTCP, "-i", "lo", "--mode", "native", check=False, timeout=scaled(30), cwd=ROOT)
    assert res.returncode == 1
    one_line(res.stderr, "cannot attach to lo", "native")


@pytest.mark.parametrize(
    "args, status, words",
    [
        (("-i", "lo", "udp port 53"), 2, ("filter:", "can never match a TCP frame")),
        (("-i", "lo", "tcp port"), 2, ("filter:",)),
        (("-i", "lo", "-c", "0"), 2, ("-c must be at least 1",)),
        (("-i", "lo", "-w", "/proc/no-such-dir/x.pcap"), 1, ("cannot create the pcap file",)),
        (("-r", "/no/such/file.pcap"), 1, ("cannot open",)),
        (("--detach",), 2, ("--detach needs -i",)),
        (("-i", "lo", "--ring-size", "1000"), 2, ("--ring-size must be a power of two",)),
        (("-i", "lo", "--ring-size", "12k"), 2, ("--ring-size must be a power of two",)),
        (("-i", "lo", "--ring-size", "4G"), 2, ("--ring-size must be at most 2G",)),
        (("-i", "lo", "-c", "abc"), 2, ("argument -c: invalid int value: 'abc'", "--help")),
        (("-i", "lo", "--ring-size", "abcK"), 2, ("--ring-size: not a size: 'abcK'",)),
        (("-i", "lo", "--mode", "fast"), 2, ("--mode: invalid choice: 'fast'", "'native'")),
        (("-r", "x.pcap", "--no-such-option"), 2, ("unrecognized arguments: --no-such-option",)),
    ],
    ids=[
        "filter-not-tcp",
        "filter-syntax",
        "count-0",
        "unwritable-w",
        "no-file",
        "detach-no-i",
        "ring-not-page",
        "ring-not-pow2",
        "ring-over-u32",
        "count-not-number",
        "ring-not-size",
        "mode-not-choice",
        "unknown-option",
    ],  # fmt: skip
)
def test_bad_invocation_is_one_line(args, status, words) -> None:
    res = run(*XDPTCP, *args, check=False, timeout=scaled(30), cwd=ROOT)
    assert res.returncode == status, res.stderr
    line = one_line(res.stderr, *words)
    assert "filter: filter:" not in line
    assert xdp_on("lo") is None


def test_a_snaplen_beyond_libpcaps_largest_reads_as_all_of_each_packet(tmp_path) -> None:
    """``-r F -s 999999 -w OUT``: tcpdump takes an -s above 262144 as -s 0; so does xdptcp,
    and OUT's header says 262144, the most a reader takes, not 999999."""
    src, out = tmp_path / "in.pcap", tmp_path / "out.pcap"
    write_pcap(src, [tcp_frame("198.18.0.1", "198.18.0.2", 40000, 5001, payload=bytes(n))
                     for n in (0, 1400)])  # fmt: skip
    run(*XDPTCP, "-r", str(src), "-s", "999999", "-w", str(out), cwd=ROOT)
    res = run(need_tool("tcpdump"), "-nn", "-r", str(out))
    assert "snapshot length 262144" in res.stderr, res.stderr
    assert [line.rsplit(" ", 1)[1] for line in res.stdout.splitlines()] == ["0", "1400"]


def test_kernel_without_ring_buffer_is_one_line(monkeypatch, capsys) -> None:
    """Simulated in-process: BPF_MAP_CREATE answers EINVAL for RINGBUF, as before Linux 5.8,
    and pybpf's probe (cached per process: it may have run already) says so."""
    from pybpf.sys import features, uapi
    from tests.kernelsim import refuse_map_type
    from xdptcp.cli import main

    refuse_map_type(monkeypatch, uapi.MapType.RINGBUF)
    with features.assume({features.Feature.RINGBUF: False}):
        assert main(["-i", "lo", "-c", "1"]) == 1
    one_line(capsys.readouterr().err, "no BPF ring buffer", "Linux 5.8")
    assert xdp_on("lo") is None


# --- privilege hygiene ---------------------------------------------------------------------------


def test_written_file_is_0644_even_with_umask_000(pair, pcap5, tmp_path) -> None:
    out = tmp_path / "cap.pcap"
    proc = subprocess.Popen(
        ("sh", "-c", 'umask 000; exec "$@"', "sh", *XDPTCP, "-i", pair.outer, "-c", "5", "-w",
         str(out)),
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + scaled(15)
        while xdp_on(pair.outer) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        replay(pair, pcap5)
        assert proc.wait(20) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    mode = stat.S_IMODE(out.stat().st_mode)
    assert mode & 0o133 == 0, oct(mode)  # no execute, no write for group or others
    assert len(run("tcpdump", "-nn", "-r", str(out)).stdout.splitlines()) == 5


def test_existing_world_writable_file_is_tightened(tmp_path) -> None:
    src = tmp_path / "in.pcap"
    write_pcap(src, [tcp_frame("198.18.0.2", "198.18.0.1", SPORT, DPORT)])
    out = tmp_path / "out.pcap"
    out.write_bytes(b"old")
    out.chmod(0o666)
    res = run(*XDPTCP, "-r", str(src), "-w", str(out), check=False, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(out.stat().st_mode) & 0o022 == 0, oct(out.stat().st_mode)


def test_symlink_at_the_output_path_is_refused(pair, tmp_path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me")
    link = tmp_path / "cap.pcap"
    link.symlink_to(target)
    res = run(*XDPTCP, "-i", pair.outer, "-w", str(link), check=False, timeout=scaled(30), cwd=ROOT)
    assert res.returncode == 1
    one_line(res.stderr, "symbolic link", "refusing")
    assert target.read_text() == "keep me"
    assert xdp_on(pair.outer) is None


def test_capture_creates_nothing_in_shared_places(pair, pcap5) -> None:
    """No pinned objects, nothing in a world-writable directory: every file creation, traced."""
    need_tool("strace")
    pinned_before = sorted(p.name for p in Path("/sys/fs/bpf").iterdir())
    trace = subprocess.Popen(
        ("strace", "-f", "-qq", "-e", "trace=openat,open,creat,mkdir,mkdirat,symlink,link,"
         "rename,renameat2,mknodat", *XDPTCP, "-i", pair.outer, "-c", "5"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + scaled(30)
        while xdp_on(pair.outer) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        replay(pair, pcap5)
        _, err = trace.communicate(timeout=scaled(30))
    finally:
        if trace.poll() is None:
            trace.kill()
            trace.wait()
    assert trace.returncode == 0, err[-2000:]
    shared = []
    for line in err.splitlines():
        creates = "O_CREAT" in line or re.search(
            r"\b(mkdir\w*|symlink|link|rename\w*|mknodat)\(", line
        )
        path = re.search(r'"([^"]+)"', line)
        if creates and path and "= -1" not in line:
            parent = Path(path.group(1)).parent
            if parent.exists() and parent.stat().st_mode & stat.S_IWOTH:
                shared.append(line)
    assert not shared, "\n".join(shared)
    new_pins = set(p.name for p in Path("/sys/fs/bpf").iterdir()) - set(pinned_before)
    assert not [n for n in new_pins if "xdptcp" in n or "xdp_capture" in n], new_pins


def test_pin_directory_and_pins_are_root_only_even_with_umask_000() -> None:
    """``pybpf load --pin``: the directory it makes and the pins in it are closed to others."""
    pin_dir = Path(f"/sys/fs/bpf/pybpf-rel-umask-{os.getpid()}")
    obj = bpf_object("tests/xdp_empty")
    try:
        res = run("sh", "-c", 'umask 000; exec "$@"', "sh", sys.executable, "-m", "pybpf", "load",
                  str(obj), "--pin", str(pin_dir), check=False, cwd=ROOT)  # fmt: skip
        assert res.returncode == 0, res.stderr
        st = pin_dir.stat()
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) & 0o077 == 0, oct(st.st_mode)
        pins = list(pin_dir.iterdir())
        assert pins
        for pin in pins:
            assert stat.S_IMODE(pin.stat().st_mode) & 0o077 == 0, (pin, oct(pin.stat().st_mode))
    finally:
        run("rm", "-rf", str(pin_dir), check=False)


class _Ring:
    """A capture whose ring holds these batches after detaching."""

    def __init__(self, *batches):
        self._batches = batches

    def batches(self):
        return iter(self._batches)


class _FillingSink:
    """A sink whose disk fills at its ``fails_at``-th write."""

    def __init__(self, fails_at: int, error: OSError):
        self.is_broken = False
        self.writes, self.fails_at, self.error = 0, fails_at, error

    def write(self, batch, limit=None):
        self.writes += 1
        if self.writes == self.fails_at:
            raise self.error
        return len(batch), len(batch)

    def broken(self):
        self.is_broken = True


def test_a_disk_that_fills_during_the_last_drain_is_reported_not_swallowed() -> None:
    """The records left in the ring after detaching: a write that fails there ends the capture
    with its error as one during the capture does (it was counted as a closed pipe: status 0,
    no message), and what was not written is counted unread."""
    from xdptcp.live import drain_rest

    full = OSError(errno.ENOSPC, "No space left on device")
    full.filename = "out.pcap"
    sink = _FillingSink(2, full)
    shown, unread, error = drain_rest(_Ring([1, 2], [3, 4, 5], [6]), sink, None, 0)
    assert (shown, unread, error) == (2, 4, full)
    assert sink.writes == 2 and not sink.is_broken  # nothing written after the failure


def test_after_a_failed_write_the_last_drain_writes_nothing() -> None:
    from xdptcp.live import drain_rest

    sink = _FillingSink(0, OSError(errno.EIO, "Input/output error"))
    assert drain_rest(_Ring([1, 2], [3]), sink, None, 0, writing=False) == (0, 3, None)
    assert sink.writes == 0
