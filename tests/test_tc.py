"""tc attach: tcx links and clsact + cls_bpf filters, each seen working on a veth, each leaving
the host as it found it — other people's qdiscs and filters included."""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import Iterator

import pytest

from pybpf.asm import insn as I
from pybpf.errors import NetlinkError, SyscallError
from pybpf.link import tc
from pybpf.link.bpflink import Link
from pybpf.program import Program
from pybpf.sys.uapi import LinkType, ProgType

from conftest import ROOT, bpf_object, need_tool, run, scaled
from hosts import VethPair, make_veth

pytestmark = [pytest.mark.system, pytest.mark.kmatrix]

TC_ACT_UNSPEC, TC_ACT_SHOT = -1, 2


def classifier(verdict: int, name: str) -> Program:
    return Program.load(ProgType.SCHED_CLS, [I.mov64_imm(0, verdict), I.exit_insn()], name=name)


def reaches(pair: VethPair, timeout: float = 0.0) -> bool:
    """Does a TCP SYN from the root namespace get through ``outer``'s egress? A closed port on
    the other side answers with a reset (refused); a dropped SYN (or ARP request) times out.
    Expecting a drop, a second is plenty (``blocked``); expecting the reset, wait longer: the
    machine may be busy. An address resolution that failed while egress was blocked can still
    end a new attempt with EHOSTUNREACH (the kernel reports its queued packets unreachable when
    the last dropped probe times out): that is tried again until the time is up."""
    deadline = time.monotonic() + (timeout or scaled(5.0))
    while True:
        with socket.socket() as s:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                s.connect((pair.inner_ip, 9))
            except ConnectionRefusedError:
                return True
            except OSError as e:
                if e.errno != errno.EHOSTUNREACH or time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)
                continue
        return True


def blocked(pair: VethPair) -> bool:
    return not reaches(pair, timeout=1.0)


def tc_show(pair: VethPair) -> tuple[str, str, str]:
    """What `tc` shows of the interface: qdiscs (without their packet counts), ingress filters,
    egress filters."""
    tool = need_tool("tc")
    qdiscs = run(tool, "qdisc", "show", "dev", pair.outer).stdout
    return (
        re.sub(r"(direct_packets_stat|refcnt) \d+", r"\1 N", qdiscs),
        run(tool, "filter", "show", "dev", pair.outer, "ingress").stdout,
        run(tool, "filter", "show", "dev", pair.outer, "egress").stdout,
    )


def tcx_or_skip() -> None:
    if not tc.tcx_supported():
        pytest.skip("this kernel has no tcx links (Linux 6.6+): the clsact tests cover it")


@pytest.fixture
def veth() -> Iterator[VethPair]:
    pair = make_veth("tc")
    try:
        yield pair
    finally:
        pair.remove()


def test_tcx_link_runs_on_egress_and_is_gone_when_closed(veth: VethPair) -> None:
    tcx_or_skip()
    assert reaches(veth)
    with classifier(TC_ACT_SHOT, "tc_shot") as prog:
        link = tc.tcx_link(prog, veth.outer_ifindex, "egress")
        info = link.info()
        assert (info.type, info.prog_id, info.ifindex) == (
            LinkType.TCX,
            prog.id,
            veth.outer_ifindex,
        )
        assert blocked(veth)  # the program drops what leaves
        link.close()
        assert reaches(veth)
    assert tc_show(veth)[0].count("clsact") == 0  # tcx needs no qdisc


def test_tcx_link_dies_with_its_process(veth: VethPair) -> None:
    tcx_or_skip()
    child = spawn_attacher(veth, "tcx")
    try:
        assert blocked(veth)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert reaches(veth)


def test_clsact_filter_runs_and_close_leaves_the_host_as_found(veth: VethPair) -> None:
    before = tc_show(veth)
    assert "clsact" not in before[0]
    with classifier(TC_ACT_SHOT, "tc_shot") as prog:
        filt = tc.tc_filter(prog, veth.outer_ifindex, "egress", name="pybpf-test")
        assert filt.created_qdisc
        shown = tc_show(veth)
        assert "clsact" in shown[0]
        assert "bpf chain 0 handle 0x1 pybpf-test direct-action" in shown[2]
        assert f"id {prog.id} name tc_shot" in shown[2]
        (ours,) = tc.filters(veth.outer_ifindex, "egress")
        assert (ours.kind, ours.prog_id, ours.name, ours.prio) == (
            "bpf",
            prog.id,
            "pybpf-test",
            filt.prio,
        )
        assert blocked(veth)
        filt.close()
    assert tc_show(veth) == before
    assert reaches(veth)


def test_foreign_qdiscs_and_filters_are_never_touched(veth: VethPair) -> None:
    tool = need_tool("tc")
    # An htb root qdisc, an existing clsact, and a filter that ends classification with a
    # verdict (u32 matching everything, with no action: TC_ACT_OK), as others leave them.
    run(tool, "qdisc", "add", "dev", veth.outer, "root", "handle", "1:", "htb")
    run(tool, "qdisc", "add", "dev", veth.outer, "clsact")
    foreign = ("u32", "match", "u32", "0", "0")
    run(tool, "filter", "add", "dev", veth.outer, "egress", "prio", "10", *foreign)
    before = tc_show(veth)
    with classifier(TC_ACT_SHOT, "tc_shot") as prog:
        filt = tc.tc_filter(prog, veth.outer_ifindex, "egress")
        assert not filt.created_qdisc
        assert filt.prio < 10  # before theirs, or their verdict would hide packets from ours
        assert blocked(veth)
        filt.close()
        assert tc_show(veth) == before
        # The same with a tcx link, which runs before every clsact filter.
        if tc.tcx_supported():
            with tc.tcx_link(prog, veth.outer_ifindex, "egress"):
                assert blocked(veth)
            assert tc_show(veth) == before
    assert reaches(veth)


def test_filters_never_collide_with_existing_priorities(veth: VethPair) -> None:
    with classifier(TC_ACT_UNSPEC, "tc_pass") as a, classifier(TC_ACT_UNSPEC, "tc_pass2") as b:
        first = tc.tc_filter(a, veth.outer_ifindex, "egress")
        second = tc.tc_filter(b, veth.outer_ifindex, "egress")
        try:
            assert second.prio < first.prio  # each goes before what is there
            shown = {f.prog_id: f.prio for f in tc.filters(veth.outer_ifindex, "egress")}
            assert shown == {a.id: first.prio, b.id: second.prio}
            assert reaches(veth)  # TC_ACT_UNSPEC: the packet goes on
        finally:
            first.close()
            # `first` added the qdisc, `second` still uses it: it stays until the last goes.
            assert "clsact" in tc_show(veth)[0]
            second.close()
    assert "clsact" not in tc_show(veth)[0]


def test_a_netlink_filter_outlives_its_process(veth: VethPair) -> None:
    child = spawn_attacher(veth, "clsact")
    child.send_signal(signal.SIGKILL)
    child.wait()
    (left,) = tc.filters(veth.outer_ifindex, "egress")
    assert (left.kind, left.name) == ("bpf", "pybpf-child")
    assert blocked(veth)  # still attached, still dropping
    tc.del_filter(veth.outer_ifindex, "egress", left.prio, left.handle)
    tc.remove_clsact_if_empty(veth.outer_ifindex)
    assert "clsact" not in tc_show(veth)[0]
    assert reaches(veth)


def test_tc_attach_auto_takes_tcx_where_the_kernel_has_it(veth: VethPair) -> None:
    release = tuple(int(x) for x in os.uname().release.split(".")[:2])
    assert tc.tcx_supported() == (release >= (6, 6))
    with classifier(TC_ACT_UNSPEC, "tc_pass") as prog:
        with tc.tc_attach(prog, veth.outer_ifindex, "egress") as att:
            assert isinstance(att, Link) == tc.tcx_supported()
        with tc.tc_attach(prog, veth.outer_ifindex, "ingress", mode="clsact") as att:
            assert isinstance(att, tc.TCFilter)
            assert [f.prog_id for f in tc.filters(veth.outer_ifindex, "ingress")] == [prog.id]
    assert "clsact" not in tc_show(veth)[0]


def test_errors_name_the_interface_and_the_kernels_reason() -> None:
    with classifier(TC_ACT_UNSPEC, "tc_pass") as prog:
        with pytest.raises((NetlinkError, SyscallError)) as e:
            tc.tc_attach(prog, 999_999, "egress", mode="clsact")
        assert e.value.errno == errno.ENODEV and "ifindex 999999" in str(e.value)
        if tc.tcx_supported():
            with pytest.raises(SyscallError) as e:
                tc.tcx_link(prog, 999_999, "egress")
            assert "no interface with ifindex 999999" in str(e.value)
    with classifier(TC_ACT_UNSPEC, "tc_pass") as prog, pytest.raises(Exception) as e:
        tc.tc_attach(prog, 1, "sideways")
    assert "unknown direction 'sideways'" in str(e.value)


def spawn_attacher(pair: VethPair, mode: str) -> subprocess.Popen:
    """A process that attaches a dropping classifier to ``outer``'s egress, says so, and sleeps."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pybpf.asm import insn as I
        from pybpf.link import tc
        from pybpf.program import Program
        from pybpf.sys.uapi import ProgType
        prog = Program.load(ProgType.SCHED_CLS, [I.mov64_imm(0, 2), I.exit_insn()], name="tc_child")
        att = tc.tc_attach(prog, {pair.outer_ifindex}, "egress", mode={mode!r}, name="pybpf-child")
        print("attached", flush=True)
        time.sleep(600)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    line = child.stdout.readline()
    if line.strip() != "attached":
        child.kill()
        child.wait()
        pytest.fail(f"the attaching process failed (exit {child.poll()})")
    time.sleep(scaled(0.05))
    return child


# --- auto-attach by section name -------------------------------------------------------------

SEND = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
s.bind((sys.argv[1], 0x88B5))  # Python swaps sll_protocol itself
for _ in range(int(sys.argv[2])):
    s.send(b"\\xff" * 6 + b"\\x02" + b"\\x00" * 5 + b"\\x88\\xb5" + b"pybpf tc test".ljust(46))
"""


def send_experimental(pair: VethPair, count: int, from_inner: bool = False) -> None:
    """``count`` frames of ethertype 0x88b5 out of ``outer`` (or into it, sent from ``inner``)."""
    prefix = ("ip", "netns", "exec", pair.ns) if from_inner else ()
    ifname = pair.inner if from_inner else pair.outer
    run(*prefix, sys.executable, "-c", SEND, ifname, str(count))


def hits(obj) -> tuple[int, int]:
    m = obj.maps["hits"]
    return tuple(int.from_bytes(m[i], "little") for i in range(2))


@pytest.mark.parametrize("mode", ["auto", "clsact", "tcx"])
def test_auto_attach_by_section_name_counts_each_hook(veth: VethPair, mode: str) -> None:
    from pybpf import ObjectSpec, load
    from pybpf.attach import attach

    if mode == "tcx":
        tcx_or_skip()
    with load(ObjectSpec.from_file(bpf_object("tests/attach_tc"))) as obj:
        ins = attach(obj.programs["tc_count_in"], interface=veth.outer, mode=mode)
        outs = attach(obj.programs["tc_count_out"], ifindex=veth.outer_ifindex, mode=mode)
        want_link = mode == "tcx" or (mode == "auto" and tc.tcx_supported())
        assert isinstance(ins, Link) == isinstance(outs, Link) == want_link
        send_experimental(veth, 3)
        send_experimental(veth, 2, from_inner=True)
        assert hits(obj) == (2, 3)
        ins.close()
        outs.close()
        send_experimental(veth, 1)
        assert hits(obj) == (2, 3)
    assert "clsact" not in tc_show(veth)[0]


def test_auto_attach_says_what_a_tc_section_needs() -> None:
    from pybpf import ObjectSpec, load
    from pybpf.attach import NeedsArguments, attach

    with load(ObjectSpec.from_file(bpf_object("tests/attach_tc"))) as obj:
        with pytest.raises(NeedsArguments) as e:
            attach(obj.programs["tc_count_out"])
        assert str(e.value) == (
            "program 'tc_count_out' (section tc/egress): a tc program needs its interface: "
            "attach(p, interface=NAME)"
        )
        with pytest.raises(NeedsArguments) as e:
            attach(obj.programs["tc_count_out"], section="classifier", interface="lo")
        assert "which hook?" in str(e.value)
