"""Program load, the verifier-log protocol, tags against bpftool, test runs, pinning."""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from pybpf.asm import insn as I
from pybpf.errors import SyscallError, VerifierError
from pybpf.program import Program
from pybpf.sys.uapi import ProgType

from conftest import need_tool, run

pytestmark = pytest.mark.system

XDP_DROP, XDP_PASS = 1, 2
_pin_counter = itertools.count()


def xdp_return(action: int) -> list[I.Instruction]:
    return [I.mov64_imm(0, action), I.exit_insn()]


def xdp_swap_macs() -> list[I.Instruction]:
    """Swap the first two bytes of the frame with bytes 6-7, bounds-checked: a program that
    changes data_out."""
    return [
        I.ldx_mem(I.Size.W, 2, 1, 0),  # r2 = ctx->data
        I.ldx_mem(I.Size.W, 3, 1, 4),  # r3 = ctx->data_end
        I.mov64_reg(4, 2),
        I.alu64_imm(I.ALUOp.ADD, 4, 100),
        I.jmp_reg(I.JmpOp.JGT, 4, 3, 6),  # if data + 100 > data_end goto drop
        I.ldx_mem(I.Size.H, 5, 2, 0),
        I.ldx_mem(I.Size.H, 6, 2, 6),
        I.stx_mem(I.Size.H, 2, 6, 0),
        I.stx_mem(I.Size.H, 2, 5, 6),
        I.mov64_imm(0, XDP_PASS),
        I.exit_insn(),
        I.mov64_imm(0, XDP_DROP),  # drop:
        I.exit_insn(),
    ]


def long_program(n: int) -> list[I.Instruction]:
    return [I.mov64_imm(0, 0)] + [I.alu64_imm(I.ALUOp.ADD, 0, 1)] * n + [I.exit_insn()]


def bpftool_show(prog_id: int) -> dict:
    return json.loads(run(need_tool("bpftool"), "prog", "show", "id", str(prog_id), "-j").stdout)


@pytest.mark.kmatrix
def test_xdp_pass_and_drop_and_tag_equals_bpftools() -> None:
    for action in (XDP_PASS, XDP_DROP):
        with Program.load(ProgType.XDP, xdp_return(action), name=f"ret{action}") as p:
            assert p.test_run(bytes(64)).retval == action
            shown = bpftool_show(p.id)
            assert shown["tag"] == p.tag
            assert shown["type"] == "xdp" and p.type == ProgType.XDP
            assert shown["name"] == f"ret{action}" == p.name


def test_test_run_data_out_duration_and_repeat() -> None:
    frame = bytes(range(128))
    with Program.load(ProgType.XDP, xdp_swap_macs(), name="swap") as p:
        res = p.test_run(frame)
        assert res.retval == XDP_PASS
        expect = bytearray(frame)
        expect[0:2], expect[6:8] = frame[6:8], frame[0:2]
        assert res.data_out == bytes(expect)
        # Repetitions run on the same buffer: an even number of swaps gives the frame back.
        many = p.test_run(frame, repeat=1000)
        assert many.data_out == frame and many.duration_ns > 0
        assert p.test_run(bytes(64)).retval == XDP_DROP  # too short for the bounds check


def _largest_accepted(p: Program, hi: int) -> int:
    """The most bytes of data the kernel takes for a test run of ``p`` (it takes 64), by
    bisection of the kernel's own answers."""
    lo = 64
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        try:
            p.test_run(bytes(mid))
            lo = mid
        except SyscallError:
            hi = mid
    return lo


@pytest.mark.kmatrix
@pytest.mark.parametrize("prog_type", [ProgType.XDP, ProgType.SCHED_CLS], ids=["xdp", "tc"])
def test_test_run_data_the_kernel_refuses_by_its_size_is_said_so(prog_type) -> None:
    """Less than an Ethernet header, or more than the kernel's packet holds (found here by
    asking the kernel): the error names the data's size and the limit, where the kernel's
    EINVAL or ENOMEM alone reads as a bad argument or a memory shortage."""
    name = prog_type.name.lower()
    with Program.load(prog_type, xdp_return(0), name=f"size_{name}") as p:
        with pytest.raises(SyscallError) as short:
            p.test_run(bytes(10))
        assert "10 bytes of data: a test run's packet needs at least an Ethernet header" in str(
            short.value
        )
        most = _largest_accepted(p, 1 << 20)
        assert p.test_run(bytes(most)).retval == 0
        with pytest.raises(SyscallError) as big:
            p.test_run(bytes(most + 1))
        text = str(big.value)
        assert text.startswith(f"cannot test-run program 'size_{name}': ")
        assert f": {most + 1} bytes of data: " in text, text
        page = os.sysconf("SC_PAGE_SIZE")
        if prog_type == ProgType.SCHED_CLS:
            assert most < page and f"one page ({page} bytes)" in text
        else:  # fragments (Linux 5.18): a page and up to 17 more; before, one page
            assert ("17 fragments of a page" in text) == (most > page), text


def test_a_program_too_complex_for_the_verifier_says_why() -> None:
    """E2BIG from the verifier (a loop it walks a million instructions into) comes with its
    line; E2BIG for more instructions than the kernel takes, before any verifying, is the bare
    errno, with no log to show."""
    loop = [I.mov64_imm(0, 0), I.alu64_imm(I.ALUOp.ADD, 0, 1),
            I.jmp_imm(I.JmpOp.JLT, 0, 3_000_000, -2), I.exit_insn()]  # fmt: skip
    with pytest.raises(VerifierError) as e:
        Program.load(ProgType.XDP, loop, name="walked")
    assert e.value.errno == errno.E2BIG
    assert "BPF program is too large. Processed 1000001 insn" in str(e.value)
    with pytest.raises(SyscallError) as e:
        Program.load(ProgType.XDP, [I.mov64_imm(0, 0)] * 1_000_001 + [I.exit_insn()])
    assert e.value.errno == errno.E2BIG and not isinstance(e.value, VerifierError)


def test_instruction_bytes_or_list_load_the_same() -> None:
    insns = xdp_return(XDP_PASS)
    with Program.load(ProgType.XDP, insns) as a, Program.load(ProgType.XDP, I.encode(insns)) as b:
        assert a.tag == b.tag and a.id != b.id


def test_verifier_rejection_carries_reason_and_whole_log() -> None:
    bad = [I.mov64_reg(0, 2), I.exit_insn()]  # r2 is never written: the verifier refuses
    with pytest.raises(VerifierError) as exc:
        Program.load(ProgType.XDP, bad, name="reads_r2", section="xdp")
    err = exc.value
    assert "cannot load program 'reads_r2' (section xdp): EACCES" in str(err)
    assert "R2 !read_ok" in str(err)
    assert "0: (bf) r0 = r2" in err.log
    assert err.log.splitlines()[-1].startswith("processed 1 insns")
    assert err.program == "reads_r2" and err.section == "xdp"


def test_missing_exit_is_reported_in_the_kernels_words() -> None:
    with pytest.raises(VerifierError, match="last insn is not an exit or jmp"):
        Program.load(ProgType.XDP, [I.mov64_imm(0, 2)], name="noexit")


@pytest.mark.kmatrix
def test_log_buffer_grows_until_the_whole_log_fits() -> None:
    """A failing program with a long log, and a first buffer far too small for it."""
    insns = long_program(2000)[:-1] + [I.mov64_reg(0, 3), I.exit_insn()]
    with pytest.raises(VerifierError) as exc:
        Program.load(ProgType.XDP, insns, name="long", log_size=256)
    log = exc.value.log
    assert len(log) > 256 * 8
    # the first line as each kernel spells it (6.1: the state of R1 shows its offset and imm)
    assert log.startswith(("func#0", "0: R1=ctx()", "0: R1=ctx(off=0,imm=0)"))
    assert "R3 !read_ok" in log and "processed " in log


def test_log_of_a_successful_load_on_request() -> None:
    with Program.load(ProgType.XDP, long_program(500), log_level=2, log_size=256) as p:
        assert "processed 502 insns" in p.verifier_log
        assert p.verifier_log.count("\n") > 500  # level 2: a line per state, not truncated
    with Program.load(ProgType.XDP, long_program(5)) as p:
        assert p.verifier_log == ""  # no log unless asked for


def test_unprivileged_style_errors_are_not_verifier_errors() -> None:
    with pytest.raises(SyscallError) as exc:
        Program.load(ProgType.XDP, b"", name="empty")
    assert not isinstance(exc.value, VerifierError) or exc.value.log


def test_holders_are_the_other_processes_with_an_fd_of_the_object() -> None:
    """``objinfo.holders``: bpftool's "pids" of a program or a map, from /proc. A child given
    the fds holds both; this process is never listed; when the child ends, nobody does."""
    import subprocess
    import sys

    from pybpf.maps import Map
    from pybpf.sys import objinfo
    from pybpf.sys.uapi import MapType

    p = Program.load(ProgType.XDP, xdp_return(XDP_PASS), name="held")
    m = Map.create(MapType.ARRAY, 4, 4, 1, name="held")
    with p, m:
        assert objinfo.holders("prog", p.id) == [] and objinfo.holders("map", m.id) == []
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()"],
            stdin=subprocess.PIPE,
            pass_fds=(p.fd, m.fd),
        )
        try:
            assert objinfo.holders("prog", p.id) == [child.pid]
            assert objinfo.holders("map", m.id) == [child.pid]
            assert objinfo.holders("prog", m.id) == []  # an id of the other kind
        finally:
            child.communicate(b"", timeout=30)
        assert objinfo.holders("prog", p.id) == [] and objinfo.holders("map", m.id) == []


def test_pin_from_pinned_and_from_id() -> None:
    pin_dir = Path(f"/sys/fs/bpf/pybpf-test-{os.getpid()}-p{next(_pin_counter)}")
    try:
        with Program.load(ProgType.XDP, xdp_return(XDP_PASS), name="pinme") as p:
            p.pin(str(pin_dir / "prog"))
            shown = json.loads(
                run(
                    need_tool("bpftool"), "prog", "show", "pinned", str(pin_dir / "prog"), "-j"
                ).stdout
            )
            assert shown["id"] == p.id
            with Program.from_pinned(str(pin_dir / "prog")) as again:
                assert again.id == p.id and again.tag == p.tag and again.name == "pinme"
            with Program.from_id(p.id) as by_id:
                assert by_id.test_run(bytes(64)).retval == XDP_PASS
    finally:
        shutil.rmtree(pin_dir, ignore_errors=True)


@pytest.mark.kmatrix
def test_xlated_code_matches_bpftool_dump(tmp_path: Path) -> None:
    with Program.load(ProgType.XDP, xdp_swap_macs(), name="xl") as p:
        out = tmp_path / "xlated.bin"
        run(need_tool("bpftool"), "prog", "dump", "xlated", "id", str(p.id), "file", str(out))
        assert p.xlated() == out.read_bytes()


def test_close_releases_the_program() -> None:
    p = Program.load(ProgType.XDP, xdp_return(XDP_PASS))
    prog_id = p.id
    p.close()
    p.close()
    with pytest.raises(SyscallError, match="ENOENT"):
        Program.from_id(prog_id)


@pytest.fixture
def loaded() -> Iterator[Program]:
    with Program.load(ProgType.XDP, xdp_return(XDP_PASS), name="info") as p:
        yield p


def test_info_fields(loaded: Program) -> None:
    info = loaded.info()
    assert info.xlated_prog_len == 16 and info.gpl_compatible and info.verified_insns == 2
    assert info.map_ids == ()


def test_log_buffer_doubles_on_kernels_without_log_true_size(monkeypatch) -> None:
    """Before 6.4 the kernel only says ENOSPC; the buffer doubles until the log fits."""
    import ctypes

    from pybpf import program as program_mod
    from pybpf.sys.progcmd import ProgLoadResult

    full_log = ("0: (b7) r0 = 0\n" * 700 + "R3 !read_ok\n").encode()
    sizes = []

    def fake_attempt(prog_type, code, *, log_level=0, log_buf=None, **kw):
        sizes.append(len(log_buf))
        ctypes.memmove(log_buf, full_log, min(len(full_log), len(log_buf) - 1))
        fits = len(log_buf) > len(full_log)
        return ProgLoadResult(-1, 13 if fits else 28, 0)  # EACCES, or ENOSPC; no true size

    monkeypatch.setattr(program_mod.progcmd, "prog_load_attempt", fake_attempt)
    with pytest.raises(VerifierError) as exc:
        program_mod._load_with_log(ProgType.XDP, b"", {}, 1, 1024, "old", "xdp")
    assert sizes == [1024, 2048, 4096, 8192, 16384]
    assert exc.value.errno == 13 and exc.value.log == full_log.decode()
    assert "R3 !read_ok" in str(exc.value)


# --- a verifier interrupted by signals -------------------------------------------------------


def _eagain_first(monkeypatch, times: int) -> list[int]:
    """The kernel's BPF_PROG_LOAD answers EAGAIN (a signal was pending while the verifier ran)
    ``times`` times, then as it would; the errnos it gave are listed."""
    import errno

    from pybpf.sys import progcmd
    from pybpf.sys.uapi import BPFCmd

    real, answers = progcmd.bpf_raw, []

    def bpf_raw(cmd, layout, **fields):
        if cmd == BPFCmd.PROG_LOAD and len(answers) < times:
            answers.append(errno.EAGAIN)
            return -1, errno.EAGAIN, layout.parse(layout.build(fields))
        ret, err, out = real(cmd, layout, **fields)
        answers.append(err)
        return ret, err, out

    monkeypatch.setattr(progcmd, "bpf_raw", bpf_raw)
    return answers


def test_a_load_a_signal_interrupts_is_issued_again(monkeypatch) -> None:
    """The verifier gives up with EAGAIN when a signal arrives (a terminal resized, a child
    ended): the load is issued again, as libbpf does, up to five times in all."""
    answers = _eagain_first(monkeypatch, 4)
    with (
        Program.load(ProgType.XDP, long_program(50), name="again") as p,
        Program.load(ProgType.XDP, long_program(50)) as q,
    ):
        assert p.tag == q.tag
    assert answers[:5] == [11, 11, 11, 11, 0]


def test_a_load_interrupted_five_times_says_so_and_is_no_refusal(monkeypatch) -> None:
    answers = _eagain_first(monkeypatch, 99)
    with pytest.raises(SyscallError) as exc:
        Program.load(ProgType.XDP, long_program(50), name="storm", section="xdp")
    assert not isinstance(exc.value, VerifierError)  # no log load, no "rejected at insn N"
    assert str(exc.value) == (
        "cannot load program 'storm' (section xdp): EAGAIN (Resource temporarily unavailable): "
        "the verifier was interrupted by a signal 5 times in a row; nothing was refused: "
        "try again"
    )
    assert answers == [11] * 5


@pytest.mark.kmatrix
def test_signals_while_the_verifier_runs_are_never_reported_as_a_refusal() -> None:
    """A real signal storm (SIGUSR1 to the loading thread every 50 µs) over loads of a program
    the verifier takes milliseconds on: the kernel answers EAGAIN, each load ends loaded or
    with the interrupted error, never a verifier rejection."""
    import errno
    import signal
    import threading
    import time

    from pybpf.sys import progcmd

    seen: list[int] = []
    real = progcmd.bpf_raw

    def counting(cmd, layout, **fields):
        ret, err, out = real(cmd, layout, **fields)
        seen.append(err)
        return ret, err, out

    old = signal.signal(signal.SIGUSR1, lambda *_: None)
    progcmd.bpf_raw = counting
    stop, me = threading.Event(), threading.get_ident()

    def storm() -> None:
        while not stop.is_set():
            signal.pthread_kill(me, signal.SIGUSR1)
            time.sleep(0.00005)

    sender = threading.Thread(target=storm)
    sender.start()
    outcomes = []
    try:
        for _ in range(5):
            try:
                Program.load(ProgType.XDP, long_program(200_000), name="big").close()
                outcomes.append("loaded")
            except SyscallError as e:
                assert not isinstance(e, VerifierError), str(e)
                assert e.errno == errno.EAGAIN and "interrupted by a signal" in str(e)
                outcomes.append("interrupted")
    finally:
        stop.set()
        sender.join()
        progcmd.bpf_raw = real
        signal.signal(signal.SIGUSR1, old)
    assert errno.EAGAIN in seen, "the kernel never cut the verifier short"
    assert len(outcomes) == 5
