"""XDP attach/detach/query over rtnetlink, on a veth pair whose peer lives in a test namespace."""

from __future__ import annotations

import json
import struct
import sys
from typing import Iterator

import pytest

from pybpf.asm import insn as I
from pybpf.errors import NetlinkError
from pybpf.link import netlink as nl
from pybpf.link.netlink import XDPAttachMode, XDPFlags
from pybpf.maps import Map
from pybpf.program import Program
from pybpf.sys.uapi import MapType, ProgType

from conftest import run
from hosts import VethPair, make_veth

XDP_PASS = 2


def xdp_pass(name: str = "pass") -> Program:
    return Program.load(ProgType.XDP, [I.mov64_imm(0, XDP_PASS), I.exit_insn()], name=name)


def xdp_counter(counts: Map) -> Program:
    """counts[0] += 1 for every frame, then XDP_PASS."""
    atomic_add = I.Instruction(I.Class.STX | I.Size.DW | I.Mode.ATOMIC, 0, 1, 0, 0)
    insns = [
        I.st_mem(I.Size.W, 10, -4, 0),  # key = 0 on the stack
        I.mov64_reg(2, 10),
        I.alu64_imm(I.ALUOp.ADD, 2, -4),
        *I.ld_map_fd(1, counts.fd),
        I.call_helper(1),  # bpf_map_lookup_elem
        I.jmp_imm(I.JmpOp.JEQ, 0, 0, 2),
        I.mov64_imm(1, 1),
        atomic_add,  # lock *(u64 *)(r0 +0) += r1
        I.mov64_imm(0, XDP_PASS),
        I.exit_insn(),
    ]
    return Program.load(ProgType.XDP, insns, name="count")


def send_udp(veth: VethPair, count: int) -> None:
    """Send ``count`` UDP datagrams from the namespace to the outer end (no ping needed)."""
    code = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for i in range(int(sys.argv[2])):\n"
        "    s.sendto(b'pybpf', (sys.argv[1], 9)); time.sleep(0.05)\n"
    )
    veth.in_ns(sys.executable, "-c", code, veth.outer_ip, str(count))


def ip_link_xdp(dev: str) -> dict:
    out = json.loads(run("ip", "-j", "-d", "link", "show", "dev", dev).stdout)
    return out[0].get("xdp", {})


@pytest.fixture
def veth() -> Iterator[VethPair]:
    pair = make_veth("nl")
    try:
        yield pair
    finally:
        pair.remove()


# --- without the kernel ---------------------------------------------------------------------------


def test_attributes_round_trip() -> None:
    blob = nl.nested(nl.IFLA_XDP, nl.attr_s32(nl.IFLA_XDP_FD, -1), nl.attr_u32(3, 0x12))
    outer = nl.parse_attrs(blob)
    assert list(outer) == [nl.IFLA_XDP]  # the NESTED bit is masked off
    inner = nl.parse_attrs(outer[nl.IFLA_XDP])
    assert struct.unpack("=i", inner[nl.IFLA_XDP_FD])[0] == -1
    assert struct.unpack("=I", inner[3])[0] == 0x12
    assert len(blob) % 4 == 0


def test_error_message_carries_the_kernels_extack_text() -> None:
    """An NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK + NETLINK_EXT_ACK."""
    request = nl.nlmsghdr.build(
        dict(nlmsg_len=64, nlmsg_type=19, nlmsg_flags=5, nlmsg_seq=7, nlmsg_pid=0)
    )
    text = b"XDP program already attached\0"
    body = struct.pack("=i", -16) + request + nl.attr(nl.NLMSGERR_ATTR_MSG, text)
    head = nl.nlmsghdr.parse(
        nl.nlmsghdr.build(
            dict(
                nlmsg_len=16 + len(body),
                nlmsg_type=nl.NLMSG_ERROR,
                nlmsg_flags=nl.NLM_F_CAPPED | nl.NLM_F_ACK_TLVS,
                nlmsg_seq=7,
                nlmsg_pid=1,
            )
        )
    )
    with pytest.raises(NetlinkError) as exc:
        nl._raise_for_error(head, body, "cannot attach XDP program to veth0")
    assert exc.value.errno == 16 and exc.value.extack == "XDP program already attached"
    assert str(exc.value) == (
        "cannot attach XDP program to veth0: EBUSY (Device or resource busy): "
        "XDP program already attached"
    )


# --- on a veth pair ------------------------------------------------------------------------------

system = pytest.mark.system


@system
@pytest.mark.kmatrix
def test_skb_mode_attach_query_agrees_with_ip(veth: VethPair) -> None:
    with xdp_pass() as prog:
        nl.xdp_attach(veth.outer_ifindex, prog.fd, XDPFlags.SKB_MODE)
        info = nl.xdp_query(veth.outer_ifindex)
        assert info.mode == XDPAttachMode.SKB
        assert info.prog_id == info.skb_prog_id == prog.id and info.drv_prog_id == 0
        shown = ip_link_xdp(veth.outer)
        assert shown["mode"] == XDPAttachMode.SKB and shown["prog"]["id"] == prog.id
        nl.xdp_detach(veth.outer_ifindex, XDPFlags.SKB_MODE)
        assert nl.xdp_query(veth.outer_ifindex).mode == XDPAttachMode.NONE
        assert ip_link_xdp(veth.outer) == {}


@system
@pytest.mark.kmatrix
def test_native_mode_counts_frames_sent_from_the_namespace(veth: VethPair) -> None:
    with Map.create(MapType.ARRAY, 4, 8, 1, name="counts") as counts, xdp_counter(counts) as prog:
        nl.xdp_attach(veth.outer_ifindex, prog.fd, XDPFlags.DRV_MODE)
        try:
            info = nl.xdp_query(veth.outer_ifindex)
            assert info.mode == XDPAttachMode.DRV and info.drv_prog_id == prog.id
            assert ip_link_xdp(veth.outer)["mode"] == XDPAttachMode.DRV
            send_udp(veth, 5)
            frames = int.from_bytes(counts.lookup(0), sys.byteorder)
            # 5 datagrams, plus ARP and IPv6 neighbour/router traffic on a fresh link.
            assert frames >= 5
        finally:
            nl.xdp_detach(veth.outer_ifindex, XDPFlags.DRV_MODE)
        assert nl.xdp_query(veth.outer_ifindex).mode == XDPAttachMode.NONE


@system
@pytest.mark.kmatrix
def test_update_if_noexist_refuses_a_second_program(veth: VethPair) -> None:
    with xdp_pass("first") as first, xdp_pass("second") as second:
        nl.xdp_attach(veth.outer_ifindex, first.fd, XDPFlags.SKB_MODE)
        with pytest.raises(NetlinkError) as exc:
            flags = XDPFlags.SKB_MODE | XDPFlags.UPDATE_IF_NOEXIST
            nl.xdp_attach(veth.outer_ifindex, second.fd, flags)
        assert exc.value.errno == 16  # EBUSY
        assert exc.value.extack == "XDP program already attached"
        assert veth.outer in str(exc.value)
        assert nl.xdp_query(veth.outer_ifindex).prog_id == first.id


@system
@pytest.mark.kmatrix
def test_replace_with_expected_fd(veth: VethPair) -> None:
    with xdp_pass("old") as old, xdp_pass("new") as new, xdp_pass("other") as other:
        idx = veth.outer_ifindex
        nl.xdp_attach(idx, old.fd, XDPFlags.SKB_MODE)
        with pytest.raises(NetlinkError) as exc:
            nl.xdp_attach(idx, new.fd, XDPFlags.SKB_MODE, expected_fd=other.fd)
        assert exc.value.errno == 17 and "does not match expected" in exc.value.extack
        assert nl.xdp_query(idx).prog_id == old.id
        nl.xdp_attach(idx, new.fd, XDPFlags.SKB_MODE, expected_fd=old.fd)
        assert nl.xdp_query(idx).prog_id == new.id
        nl.xdp_detach(idx, XDPFlags.SKB_MODE)


@system
@pytest.mark.kmatrix
def test_detach_uses_attach_mode(veth: VethPair) -> None:
    """The trap: a detach in another mode is answered with success and detaches nothing."""
    with xdp_pass() as prog:
        idx = veth.outer_ifindex
        nl.xdp_attach(idx, prog.fd, XDPFlags.SKB_MODE)
        nl.xdp_detach(idx, XDPFlags.DRV_MODE)  # no error...
        assert nl.xdp_query(idx).prog_id == prog.id  # ...and still attached
        assert ip_link_xdp(veth.outer)["prog"]["id"] == prog.id
        nl.xdp_detach(idx, XDPFlags.SKB_MODE)
        assert nl.xdp_query(idx).mode == XDPAttachMode.NONE


@system
@pytest.mark.kmatrix
def test_native_and_generic_cannot_be_mixed(veth: VethPair) -> None:
    with xdp_pass() as prog:
        nl.xdp_attach(veth.outer_ifindex, prog.fd, XDPFlags.SKB_MODE)
        with pytest.raises(NetlinkError, match="Native and generic XDP can't be active"):
            nl.xdp_attach(veth.outer_ifindex, prog.fd, XDPFlags.DRV_MODE)
        nl.xdp_detach(veth.outer_ifindex, XDPFlags.SKB_MODE)


@system
def test_list_links_shows_the_veth_with_its_program(veth: VethPair) -> None:
    with xdp_pass() as prog:
        nl.xdp_attach(veth.outer_ifindex, prog.fd, XDPFlags.SKB_MODE)
        links = {link.name: link for link in nl.list_links()}
        ours = links[veth.outer]
        assert ours.ifindex == veth.outer_ifindex and ours.kind == "veth" and ours.up
        assert ours.mtu == 1500 and ours.xdp.prog_id == prog.id
        assert links["lo"].xdp.mode == XDPAttachMode.NONE
        nl.xdp_detach(veth.outer_ifindex, XDPFlags.SKB_MODE)


@system
def test_unknown_interfaces_are_clear_errors() -> None:
    with pytest.raises(NetlinkError, match="no network interface named 'nosuch0'"):
        nl.ifindex_of("nosuch0")
    with pytest.raises(NetlinkError) as exc:
        nl.xdp_query(0x7FFFFFF0)
    assert exc.value.errno == 19  # ENODEV
    with xdp_pass() as prog, pytest.raises(NetlinkError, match="ENODEV"):
        nl.xdp_attach(0x7FFFFFF0, prog.fd, XDPFlags.SKB_MODE)


@system
def test_ifindex_of_agrees_with_sysfs(veth: VethPair) -> None:
    assert nl.ifindex_of(veth.outer) == veth.outer_ifindex


@system
def test_list_links_agrees_with_ip_link(veth: VethPair) -> None:
    shown = json.loads(run("ip", "-j", "link", "show").stdout)
    ours = nl.list_links()
    assert [(x.ifindex, x.name, x.mtu) for x in ours] == [
        (x["ifindex"], x["ifname"], x["mtu"]) for x in shown
    ]
    assert [x.operstate.name for x in ours] == [x["operstate"] for x in shown]
