"""XDP through a bpf_link: visible to bpftool, gone with its last fd, exclusive against netlink."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from pybpf.asm import insn as I
from pybpf.errors import NetlinkError, SyscallError
from pybpf.link import netlink as nl
from pybpf.link.bpflink import Link, xdp_link
from pybpf.link.netlink import XDPAttachMode, XDPFlags
from pybpf.program import Program
from pybpf.sys.uapi import LinkType, ProgType

from conftest import need_tool, run
from hosts import VethPair, make_veth

pytestmark = [pytest.mark.system, pytest.mark.kmatrix]


def xdp_return(action: int, name: str) -> Program:
    return Program.load(ProgType.XDP, [I.mov64_imm(0, action), I.exit_insn()], name=name)


def bpftool_links() -> list[dict]:
    return json.loads(run(need_tool("bpftool"), "link", "show", "-j").stdout)


@pytest.fixture
def veth() -> Iterator[VethPair]:
    pair = make_veth("lk")
    try:
        yield pair
    finally:
        pair.remove()


def test_xdp_link_is_visible_and_gone_when_closed(veth: VethPair) -> None:
    with xdp_return(2, "lpass") as prog:
        link = xdp_link(prog, veth.outer_ifindex)
        info = link.info()
        assert info.type == LinkType.XDP and info.prog_id == prog.id
        assert info.ifindex == veth.outer_ifindex
        shown = {x["id"]: x for x in bpftool_links()}[info.id]
        assert shown["type"] == "xdp" and shown["prog_id"] == prog.id
        if "ifindex" in shown:  # bpftool before 7.2 does not print it for XDP links
            assert shown["ifindex"] == veth.outer_ifindex
        assert nl.xdp_query(veth.outer_ifindex).prog_id == prog.id
        link.close()
        assert info.id not in {x["id"] for x in bpftool_links()}
        assert nl.xdp_query(veth.outer_ifindex).mode == XDPAttachMode.NONE


def test_netlink_cannot_touch_an_interface_held_by_a_link(veth: VethPair) -> None:
    with xdp_return(2, "held") as prog, xdp_return(1, "intruder") as other:
        with xdp_link(prog, veth.outer_ifindex, XDPFlags.SKB_MODE):
            with pytest.raises(NetlinkError) as exc:
                nl.xdp_attach(veth.outer_ifindex, other.fd, XDPFlags.SKB_MODE)
            assert exc.value.errno == 16  # EBUSY
            assert exc.value.extack == "Can't replace active BPF XDP link"
            with pytest.raises(NetlinkError):
                nl.xdp_detach(veth.outer_ifindex, XDPFlags.SKB_MODE)
            assert nl.xdp_query(veth.outer_ifindex).skb_prog_id == prog.id
        assert nl.xdp_query(veth.outer_ifindex).mode == XDPAttachMode.NONE


def test_update_swaps_the_program(veth: VethPair) -> None:
    v1, v2, v3 = (xdp_return(2, f"v{i}") for i in (1, 2, 3))
    with v1, v2, v3, xdp_link(v1, veth.outer_ifindex) as link:
        link.update(v2)
        assert link.info().prog_id == v2.id
        assert nl.xdp_query(veth.outer_ifindex).prog_id == v2.id
        with pytest.raises(SyscallError, match="EPERM"):
            link.update(v3, old_program=v1)  # v1 is no longer the one attached
        link.update(v3, old_program=v2)
        assert link.info().prog_id == v3.id


def test_pinned_link_outlives_its_fd(veth: VethPair) -> None:
    pin_dir = Path(f"/sys/fs/bpf/pybpf-test-{os.getpid()}-link")
    try:
        with xdp_return(2, "pinned") as prog:
            with xdp_link(prog, veth.outer_ifindex) as link:
                link.pin(str(pin_dir / "xdp"))
                link_id = link.id
            assert nl.xdp_query(veth.outer_ifindex).prog_id == prog.id  # the pin holds it
            with Link.from_pinned(str(pin_dir / "xdp")) as again:
                assert again.id == link_id
            with Link.from_id(link_id) as by_id:
                by_id.detach()  # now, despite the pin
                assert by_id.info().prog_id == prog.id  # a defunct link keeps its program
            assert nl.xdp_query(veth.outer_ifindex).mode == XDPAttachMode.NONE
    finally:
        shutil.rmtree(pin_dir, ignore_errors=True)


def test_link_to_a_missing_interface_is_an_error() -> None:
    with xdp_return(2, "nowhere") as prog, pytest.raises(SyscallError) as exc:
        xdp_link(prog, 0x7FFFFFF0)
    # The kernel answers EINVAL for a missing device; the error says what was wrong.
    assert "no interface with ifindex 2147483632" in str(exc.value)
