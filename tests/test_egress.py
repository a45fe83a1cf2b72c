"""Both directions: xdptcp on one end of a veth pair against tcpdump on the same end, with real
conversations (a bulk transfer with TSO on, and a short one); and nothing left behind.

The XDP program sees what arrives, the tc program what leaves (a tcx link, or a clsact filter
where the kernel has no tcx or `--tc clsact` asks for it). tcpdump's taps sit after both hooks,
so each line must be the same, in the same order, with the same ``length N``: a TSO super-packet
leaves as one packet of up to 64 KiB, and both tools show it so.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from typing import Iterator, Optional

import pytest
from background import read_until_ready, stop_all

from pybpf.errors import BPFError
from pybpf.link import netlink, tc
from pybpf.sys import objcmd, objinfo
from pybpf.sys.uapi import LinkType

from conftest import IN_GUEST, ROOT, need_tool, run, scaled
from hosts import VethPair, make_veth

pytestmark = pytest.mark.system
kmatrix = pytest.mark.kmatrix  # the tests that also run in the kernel matrix's guests

# Enough for TSO super-packets and thousands of lines; a kernel-matrix guest, where Python is
# 10-20x slower, formats a few hundred.
BULK = 600_000 if IN_GUEST else 4_000_000
BULK_PORT, TALK_PORT = 5002, 5001
_running: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _nothing_left_running() -> Iterator[None]:
    """A failed test must not leave an xdptcp or a tcpdump behind."""
    yield
    stop_all(_running)


@pytest.fixture
def veth() -> Iterator[VethPair]:
    need_tool("tcpdump")
    pair = make_veth("eg")
    try:
        yield pair
    finally:
        pair.remove()


class Background:
    """A capture tool in the background, started once it says it is ready (on stderr)."""

    def __init__(self, cmd: list[str], ready: bytes, netns: Optional[str] = None) -> None:
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        env = dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC")
        # stdout goes to a file: a pipe nobody reads while the tool runs would fill up and
        # stall it, and then both tools would lose packets for reasons of the test's own.
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, stdout=self.out, stderr=subprocess.PIPE, env=env, cwd=ROOT
        )
        _running.append(self.proc)
        self.err = read_until_ready(self.proc, ready, scaled(30), cmd[0])

    def stop(self, sig: int = signal.SIGINT) -> tuple[str, str, int]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=scaled(60))
        err = (self.err + err).decode()
        self.out.seek(0)
        out = self.out.read()
        self.out.close()
        dropped = re.search(r"^(\d+) packets? dropped by kernel", err, re.M)
        assert dropped is None or dropped.group(1) == "0", err  # the reference is complete
        return out.decode(), err, self.proc.returncode


def xdptcp(*args: str) -> Background:
    return Background([sys.executable, "-m", "xdptcp", *args], b"capturing on")


def tcpdump(*args: str) -> Background:
    """tcpdump keeping headers only (-s 200; the lines do not depend on payload bytes) with a
    16 MiB buffer: a burst of 64 KiB super-packets would overflow its default 2 MiB, and then the
    reference itself would miss packets (``stop`` checks that it did not)."""
    return Background(["tcpdump", "-nn", "-l", "-s", "200", "-B", "16384", *args], b"listening on")


SERVER = f"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
bulk = socket.create_server((sys.argv[1], {BULK_PORT}), family=family)
talk = socket.create_server((sys.argv[1], {TALK_PORT}), family=family)
print("ready", flush=True)
c, _ = bulk.accept()
while c.recv(1 << 16):
    pass
c.sendall(b"done")
c.close()
c, _ = talk.accept()
c.sendall(c.recv(100) * 3)
c.close()
"""

CLIENT = f"""
import socket, sys
c = socket.create_connection((sys.argv[1], {BULK_PORT}))
c.sendall(b"x" * (int(sys.argv[2]) if len(sys.argv) > 2 else {BULK}))
c.shutdown(socket.SHUT_WR)
assert c.recv(10) == b"done"
c.close()
c = socket.create_connection((sys.argv[1], {TALK_PORT}))
c.sendall(b"hello")
c.recv(100)
c.close()
"""


def converse(pair: VethPair, ipv6: bool = False, bulk: int = BULK, inward: bool = False) -> None:
    """From ``outer`` (root namespace) to a server inside the namespace: a bulk transfer of a
    few MB (TSO super-packets leave ``outer``), then a short request and reply. ``inward``: the
    other way, from inside the namespace to a server on ``outer`` (they arrive on it)."""
    inside = ["ip", "netns", "exec", pair.ns]
    if inward:
        server_ip = pair.outer_ip6 if ipv6 else pair.outer_ip
        server_in, client_in = [], inside
    else:
        server_ip = pair.inner_ip6 if ipv6 else pair.inner_ip
        server_in, client_in = inside, []
    server = subprocess.Popen(
        [*server_in, sys.executable, "-c", SERVER, server_ip],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout.readline().strip() == "ready", server.stderr.read()
        run(*client_in, sys.executable, "-c", CLIENT, server_ip, str(bulk), timeout=scaled(60))
        server.wait(timeout=scaled(20))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    time.sleep(scaled(0.5))  # the last ACKs and FINs reach both tools


def both_captures(
    pair: VethPair, mine: list[str], theirs: list[str], ipv6: bool = False, bulk: int = BULK
) -> tuple[list[str], list[str], str]:
    """Run xdptcp ``mine`` and tcpdump ``theirs`` through one conversation; their lines."""
    dump = tcpdump("-i", pair.outer, *theirs)
    cap = xdptcp("-i", pair.outer, *mine)
    converse(pair, ipv6, bulk)
    out, err, rc = cap.stop()
    assert rc == 0, err
    ref, _, _ = dump.stop()
    return out.splitlines(), nonblank(ref), err


def nonblank(text: str) -> list[str]:
    """tcpdump's lines (interrupted, it ends its output with an empty line)."""
    return [ln for ln in text.splitlines() if ln]


def by_sender(lines: list[str]) -> dict[str, list[str]]:
    """The lines of each sending endpoint (``IP a.port``), in their order."""
    out: dict[str, list[str]] = {}
    for line in lines:
        out.setdefault(line.split(" > ", 1)[0], []).append(line)
    return out


def assert_same_lines(mine: list[str], ref: list[str]) -> None:
    """tcpdump's lines, each direction in tcpdump's order.

    Across directions the order of two packets a few microseconds apart is not the same
    question for both tools: XDP sees an arriving packet before tcpdump's tap in the stack does,
    and the egress hook sees a leaving one before it is handed to the device where tcpdump's tap
    is; so an In and an Out line that nearly coincide may be printed in the other order. Every
    line is there, and each direction's sequence is tcpdump's."""
    assert len(mine) == len(ref)
    assert by_sender(mine) == by_sender(ref)


def lengths(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for m in (re.search(r"length (\d+)$", ln) for ln in lines) if m]


@kmatrix
@pytest.mark.parametrize(
    "direction, tso, ip",
    [
        ("inout", "on", 4),
        ("in", "on", 4),
        ("out", "on", 4),
        ("inout", "off", 4),
        ("out", "off", 4),
        ("inout", "on", 6),
        ("inout", "off", 6),
        ("inout", "on", "6 -vv"),
    ],
)
def test_a_conversation_prints_tcpdumps_lines_for_each_direction(veth, direction, tso, ip):
    if tso == "off":
        # The kernel now segments after the egress hook, before tcpdump's tap: xdptcp cuts the
        # packets the hook saw as the kernel does.
        run(need_tool("ethtool"), "-K", veth.outer, "tso", "off")
    # (-vv on IPv6, whose verbose lines are one line each: the checksums as tcpdump finds them
    # on what it keeps, 200 bytes. With TSO on, both see the packets the stack sent; with it
    # off, a segment xdptcp cuts from what the egress hook saw has only the bytes its record
    # kept of that packet, and the last of them, short, is whole in tcpdump's capture only.)
    verbose = ["-vv"] if ip == "6 -vv" else []
    mine, ref, err = both_captures(
        veth,
        ["-t", *verbose, *(["-s", "200"] if verbose else []), "-Q", direction, "tcp"],
        ["-t", *verbose, "-Q", direction, "tcp"],
        ip != 4,
    )
    assert len(ref) > 10  # with -Q in and TSO, the ACKs only: a few dozen
    if verbose:  # the segments kept whole (the ACKs, the small messages) have theirs checked
        assert sum("cksum 0x" in ln for ln in ref) > 10
    if direction == "inout":
        assert_same_lines(mine, ref)
    else:
        assert mine == ref
    assert f"{len(ref)} packets captured" in err
    if direction != "in":
        # TSO on: super-packets, one line for many MSS of data, as tcpdump shows them.
        assert (max(lengths(mine)) > 1500) == (tso == "on")
    if direction == "inout":
        assert "out: " in err and "in: " in err


@kmatrix
@pytest.mark.parametrize("mode", ["auto", "native", "skb"])
def test_on_a_veth_native_xdp_takes_tso_from_the_peer_skb_mode_does_not(veth, mode):
    """What docs/xdptcp.md says of XDP modes on a veth (`auto` is native there). While a native
    program is attached, the kernel takes TSO from the peer, so TCP's large packets arrive cut
    to the MTU (and tcpdump, beside xdptcp, sees them so too); generic XDP leaves the peer
    alone, and the super-packets arrive as they would without a capture. Either way xdptcp's
    lines are tcpdump's, and the peer is as it was once xdptcp has exited. In skb mode the
    program runs on each CPU's backlog, some way before tcpdump's tap: packets two CPUs hand
    over at once may come in another order than tcpdump's (the ACKs a receiver sends both from
    its process and from the softirq), so there the lines are compared as a whole."""
    ethtool = need_tool("ethtool")
    attached = "native" if mode == "auto" else mode

    def peer_tso() -> str:
        out = veth.in_ns(ethtool, "-k", veth.inner).stdout
        return re.search(r"^tcp-segmentation-offload: (\w+)", out, re.M).group(1)

    assert peer_tso() == "on"
    dump = tcpdump("-i", veth.outer, "-t", "-Q", "in", "tcp")
    cap = xdptcp("-i", veth.outer, "-t", "-Q", "in", "--mode", mode, "tcp")
    assert f"in: {attached} XDP" in cap.err.decode()
    assert peer_tso() == ("on" if attached == "skb" else "off")
    converse(veth, inward=True)
    out, err, code = cap.stop()
    assert code == 0, err
    ref, _, _ = dump.stop()
    mine, ref = nonblank(out), nonblank(ref)
    assert len(ref) > 10
    if attached == "native":
        assert mine == ref
    else:
        assert sorted(mine) == sorted(ref)
    assert (max(lengths(mine)) > 1500) == (attached == "skb")
    assert peer_tso() == "on"


# (Linux 6.1 makes packets of more than 64 KiB only for a device with TSO: on it, without TSO,
# the test would not see any, and it runs on this machine's kernel only.)
@pytest.mark.parametrize("tso", [pytest.param("on", marks=kmatrix), "off"])
def test_big_tcp_jumbograms_leaving_print_tcpdumps_lines(veth, tso):
    """IPv6 BIG TCP (a GSO size above 64 KiB): the super-packets leaving are jumbograms, their
    length in a hop-by-hop Jumbo Payload option where this kernel adds one. With TSO their
    lines are tcpdump's; without it, tcpdump shows the segments the kernel cut after taking
    that header off, and so does xdptcp. (tcpdump's `tcp` does not look behind a hop-by-hop
    header: it is given those packets by their next header, its lines of other protocols left
    out.)"""
    run("ip", "link", "set", veth.outer, "gso_max_size", "185000")
    if tso == "off":
        run(need_tool("ethtool"), "-K", veth.outer, "tso", "off")
    stamped, ref, err = both_captures(
        veth,
        ["--nano", "-Q", "out"],  # (the times set apart below, then compared without them)
        ["-t", "-Q", "out", "tcp or ip6[6] == 0"],
        ipv6=True,
        bulk=4_000_000,  # (in a guest too: enough packets of more than 64 KiB to tell)
    )
    ref = [ln for ln in ref if "ICMP6" not in ln]
    times, mine = zip(*(ln.split(" ", 1) for ln in stamped)) if stamped else ((), ())
    assert list(mine) == ref
    jumbograms = [ln for ln in ref if ": HBH " in ln]
    if tso == "on":
        assert len(jumbograms) > 5 and max(lengths(ref)) > 65535, ref
    else:
        assert not jumbograms and max(lengths(ref)) == 1428
        # The segments of one packet the hook saw carry its time. Some packet was cut into more
        # than one of 64 KiB makes (46 of 1428 bytes): a BIG TCP packet, whose hop-by-hop header
        # went before the cut. (How many there are depends on how fast TCP's window grows.)
        most = max(len(list(run_)) for _, run_ in itertools.groupby(times))
        assert most > 46, (most, len(ref), err)


@kmatrix
def test_the_clsact_path_prints_the_same_lines(veth):
    mine, ref, err = both_captures(veth, ["-t", "--tc", "clsact", "tcp"], ["-t", "tcp"])
    assert "out: clsact" in err
    assert len(ref) > 20
    assert_same_lines(mine, ref)


@kmatrix
@pytest.mark.parametrize(
    "expr",
    ["port 5001", "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0", "src host {inner}"],
    ids=["port", "flags", "src"],
)
def test_filters_apply_to_both_directions(veth, expr):
    expr = expr.format(inner=veth.inner_ip)
    # xdptcp sees TCP only: tcpdump is told so (or it would show ARP for `src host`).
    mine, ref, _ = both_captures(veth, ["-t", expr], ["-t", f"tcp and ({expr})"])
    assert ref
    assert_same_lines(mine, ref)


def beside_tcpdump_any(veth, args, dump_args, expr, both):
    """xdptcp on ``veth``'s outer end and on a second pair's (``args``, the filter ``expr``)
    beside ``tcpdump -i any`` (``dump_args``, ``tcp and`` the same filter) while the outer end
    converses with the inner one (and the second pair's too: ``both``): xdptcp's output,
    stderr and exit code, tcpdump's lines, the second interface's name."""
    other = make_veth("eg")
    try:
        dump = tcpdump("-i", "any", *dump_args, "tcp", "and", "(", *expr, ")")
        cap = xdptcp("-i", veth.outer, "-i", other.outer, *args, *expr)
        converse(veth)
        if both:
            converse(other)
        out, err, rc = cap.stop()
        ref, _, _ = dump.stop()
    finally:
        other.remove()
    return out, err, rc, nonblank(ref), other.outer


@kmatrix
@pytest.mark.parametrize("e", [False, True], ids=["plain", "e"])
def test_several_interfaces_mark_in_and_out_as_tcpdump_any_does(veth, e):
    """Each line starts "IFACE In|Out IP a.port"; with -e, "IFACE In|Out ifindex N SRC
    ethertype ..., length N: a.port", the cooked header tcpdump -i any's packets have."""
    args = ("-t", "-e") if e else ("-t",)
    net = veth.outer_ip.rsplit(".", 1)[0] + ".0/24"
    out, err, rc, ref, _ = beside_tcpdump_any(veth, args, args, ("net", net), False)
    assert rc == 0, err
    ref = [ln for ln in ref if ln.startswith(veth.outer)]
    said = " ifindex " if e else " IP "
    assert any(f" Out{said}" in ln for ln in ref) and any(f" In {said}" in ln for ln in ref)
    assert_same_lines(out.splitlines(), ref)


@kmatrix
def test_json_of_several_interfaces_names_each_packets_interface_and_direction(veth):
    """--json on two interfaces (walked from the ring, each object given its record's
    interface): every packet tcpdump -i any shows, on the interface and in the direction it
    shows it, each sender's packets in its order, flags and payload lengths alike."""
    import json

    expr = ("net", "198.18.0.0/15")  # both pairs' subnets
    out, err, rc, ref, other = beside_tcpdump_any(veth, ("--json",), ("-t",), expr, True)
    assert rc == 0, err
    mine = []
    for obj in map(json.loads, out.splitlines()):
        way = {"in": "In ", "out": "Out"}[obj["direction"]]
        ends = f"{obj['src']}.{obj['sport']} > {obj['dst']}.{obj['dport']}"
        mine.append(f"{obj['ifname']} {way} IP {ends} [{obj['flags']}] {obj['payload_len']}")
    want = []
    for line in ref:
        m = re.match(r"(\S+) +(In |Out) IP (\S+ > \S+): Flags \[([^]]*)\].*, length (\d+)", line)
        if m and m.group(1) in (veth.outer, other):
            want.append(f"{m.group(1)} {m.group(2)} IP {m.group(3)} [{m.group(4)}] {m.group(5)}")
    assert {ln.split()[0] for ln in want} == {veth.outer, other}
    assert any(" Out IP " in ln for ln in want) and any(" In  IP " in ln for ln in want)
    assert_same_lines(mine, want)


@kmatrix
def test_written_pcapng_keeps_each_packets_direction(veth, tmp_path):
    tshark = need_tool("tshark")
    path = tmp_path / "both.pcapng"
    cap = xdptcp("-i", veth.outer, "-w", str(path), "tcp")
    # Absolute sequence numbers (-S): relative ones depend on what else each tool saw.
    dump_in = tcpdump("-i", veth.outer, "-t", "-S", "-Q", "in", "tcp")
    dump_out = tcpdump("-i", veth.outer, "-t", "-S", "-Q", "out", "tcp")
    converse(veth)
    _, err, rc = cap.stop()
    assert rc == 0, err
    ins, outs = (nonblank(d.stop()[0]) for d in (dump_in, dump_out))
    fields = run(
        tshark, "-r", str(path), "-T", "fields", "-e", "frame.interface_name",
        "-e", "frame.packet_flags_direction", "-e", "ip.src",
    ).stdout.splitlines()  # fmt: skip
    seen = [ln.split("\t") for ln in fields]
    assert {name for name, _, _ in seen} == {veth.outer}
    # epb_flags: 0x1 inbound, 0x2 outbound; what leaves comes from outer's address.
    assert sum(d == "0x00000001" for _, d, _ in seen) == len(ins)
    assert sum(d == "0x00000002" for _, d, _ in seen) == len(outs)
    assert all((src == veth.outer_ip) == (d == "0x00000002") for _, d, src in seen)
    # tcpdump reads it back line for line (it prints no direction for one interface).
    back = run("tcpdump", "-nn", "-t", "-S", "-r", str(path)).stdout.splitlines()
    assert sorted(back) == sorted(ins + outs)


@kmatrix
def test_a_written_pcapng_names_its_interfaces_before_any_packet(veth, tmp_path):
    """The interfaces are described when the file is opened, in the order of -i: a capture
    that ends before its first packet (or is stopped when nothing matched) leaves a file
    tcpdump reads (libpcap refuses a pcapng section without an interface), and the packets of
    the second interface are its."""
    tshark = need_tool("tshark")
    other = make_veth("eg")
    try:
        empty, both = tmp_path / "none.pcapng", tmp_path / "two.pcapng"
        _, err, rc = xdptcp("-i", veth.outer, "-w", str(empty), "tcp port 9").stop()
        assert rc == 0, err
        res = run("tcpdump", "-nn", "-r", str(empty), check=False)
        assert (res.returncode, res.stdout) == (0, ""), res.stderr
        assert f"reading from file {empty}, link-type EN10MB" in res.stderr
        cap = xdptcp("-i", other.outer, "-i", veth.outer, "-s", "999999", "-w", str(both))
        converse(veth)
        _, err, rc = cap.stop()
    finally:
        other.remove()
    assert rc == 0, err
    assert "snaplen limited to 4096 bytes per packet" in err
    fields = run(
        tshark, "-r", str(both), "-T", "fields", "-e", "frame.interface_id",
        "-e", "frame.interface_name",
    ).stdout.splitlines()  # fmt: skip
    assert fields and set(fields) == {f"1\t{veth.outer}"}
    # what the file says of its snapshot length is what was captured: 4096, not 999999
    res = run("tcpdump", "-nn", "-c", "1", "-r", str(both))
    assert "snapshot length 4096" in res.stderr, res.stderr


# --- nothing left behind -------------------------------------------------------------------


def link_infos(ifindex: int) -> Iterator[objinfo.BPFLinkInfo]:
    """What the kernel says of each bpf_link attached to an interface."""
    link_id = 0
    while (link_id := objcmd.link_get_next_id(link_id)) is not None:
        try:
            fd = objcmd.link_get_fd_by_id(link_id)
        except BPFError:
            continue  # gone between the two calls
        try:
            info = objinfo.link_info(fd)
        finally:
            os.close(fd)
        if info.ifindex == ifindex:
            yield info


def links_on(ifindex: int) -> list[int]:
    """Types of the bpf_links attached to an interface (XDP, TCX)."""
    return [i.type for i in link_infos(ifindex) if i.type in (LinkType.XDP, LinkType.TCX)]


def hooks(pair: VethPair) -> dict[str, object]:
    """What is attached to ``outer``: XDP program, tc links, clsact filters, qdiscs."""
    ifindex = pair.outer_ifindex
    return {
        "xdp": netlink.xdp_query(ifindex).prog_id,
        "links": links_on(ifindex),
        "filters": [(f.kind, f.prio) for f in tc.filters(ifindex, "egress")],
        "qdiscs": sorted(q.kind for q in tc.qdiscs(ifindex)),
    }


NOTHING = {"xdp": 0, "links": [], "filters": [], "qdiscs": ["noqueue"]}


def tc_modes() -> list[str]:
    return ["tcx", "clsact"] if tc.tcx_supported() else ["clsact"]


@kmatrix
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("mode", ["tcx", "clsact"])
def test_nothing_is_left_after_a_signal(veth, sig, mode):
    if mode not in tc_modes():
        pytest.skip("this kernel has no tcx links (Linux 6.6)")
    assert hooks(veth) == NOTHING
    cap = xdptcp("-i", veth.outer, "--tc", mode)
    attached = hooks(veth)
    assert attached["xdp"]
    if mode == "tcx":
        assert attached["links"] == [LinkType.TCX] and attached["filters"] == []
    else:
        assert attached["filters"] == [("bpf", tc.AUTO_PRIO)] and "clsact" in attached["qdiscs"]
    _, err, rc = cap.stop(sig)
    assert rc == 0, err
    assert hooks(veth) == NOTHING


@kmatrix
def test_after_kill_9_the_next_run_removes_what_was_left(veth):
    cap = xdptcp("-i", veth.outer, "--tc", "clsact")
    cap.stop(signal.SIGKILL)
    left = hooks(veth)
    assert left["xdp"] and left["filters"]  # netlink attachments outlive the process
    again = xdptcp("-i", veth.outer, "--tc", "clsact")
    _, err, rc = again.stop()
    assert rc == 0, err
    assert "removed a stale xdptcp program" in err
    assert "removed a stale xdptcp tc filter" in err
    assert hooks(veth) == NOTHING
    if "tcx" in tc_modes():  # a tcx link dies with its process; XDP is left as before
        xdptcp("-i", veth.outer, "--tc", "tcx").stop(signal.SIGKILL)
        assert hooks(veth)["links"] == [] and hooks(veth)["filters"] == []


@kmatrix
def test_detach_removes_both_hooks(veth):
    xdptcp("-i", veth.outer, "--tc", "clsact").stop(signal.SIGKILL)
    res = run(sys.executable, "-m", "xdptcp", "--detach", "-i", veth.outer, cwd=ROOT)
    assert "removed xdptcp tc filter" in res.stderr
    assert "removed xdptcp program" in res.stderr
    assert hooks(veth) == NOTHING


@kmatrix
def test_list_interfaces_shows_both_hooks(veth):
    """-D names what runs on each hook, with the ids the kernel's tools show: ip for XDP, tc for
    clsact filters, the tcx link's program where the kernel has tcx."""
    tool = need_tool("tc")
    run(tool, "qdisc", "add", "dev", veth.outer, "clsact")
    run(tool, "filter", "add", "dev", veth.outer, "egress", "prio", "7", "u32", "match", "u32",
        "0", "0")  # fmt: skip
    for mode in tc_modes():
        cap = xdptcp("-i", veth.outer, "--tc", mode)
        try:
            listed = run(sys.executable, "-m", "xdptcp", "-D", cwd=ROOT).stdout.splitlines()
            ip_link = run("ip", "-d", "link", "show", veth.outer).stdout
            shown = run(tool, "filter", "show", "dev", veth.outer, "egress").stdout
            tcx = tcx_programs(veth.outer_ifindex)
        finally:
            cap.stop()
        (line,) = [ln for ln in listed if ln.split(".", 1)[1].startswith(veth.outer + " ")]
        xdp_id = re.search(r"prog/xdp id (\d+)", ip_link).group(1)
        assert re.search(rf"XDP id {xdp_id} 'xdp_capture_all' \((drv|skb)\) \[xdptcp\]", line)
        if mode == "clsact":
            prog_id = re.search(r"xdptcp:\S+ direct-action .*?id (\d+) name tc_capture", shown)[1]
            assert f"; tc egress bpf id {prog_id} 'tc_capture' [xdptcp] prio " in line
        else:
            assert f"; tc egress tcx id {tcx[0]} 'tc_capture' [xdptcp]" in line
        assert "u32" in shown and line.endswith("; tc egress u32 prio 7"), line


def tcx_programs(ifindex: int) -> list[int]:
    """The programs of the tcx links on an interface."""
    return [i.prog_id for i in link_infos(ifindex) if i.type == LinkType.TCX]


@kmatrix
def test_foreign_qdiscs_and_filters_are_never_touched(veth):
    tool = need_tool("tc")
    run(tool, "qdisc", "add", "dev", veth.outer, "root", "handle", "1:", "htb")
    run(tool, "qdisc", "add", "dev", veth.outer, "clsact")
    run(tool, "filter", "add", "dev", veth.outer, "egress", "prio", "7", "u32", "match", "u32",
        "0", "0")  # fmt: skip
    before = hooks(veth)
    for mode in tc_modes():
        mine, ref, _ = both_captures(veth, ["-t", "--tc", mode, "tcp"], ["-t", "tcp"])
        assert_same_lines(mine, ref)  # their filter ends classification; ours runs before it
        assert hooks(veth) == before
    xdptcp("-i", veth.outer, "--tc", "clsact").stop(signal.SIGKILL)
    _, err, rc = xdptcp("-i", veth.outer, "--tc", "clsact").stop()
    assert rc == 0 and "removed a stale xdptcp tc filter" in err
    assert hooks(veth) == before


# --- jumbo frames ----------------------------------------------------------------------------


@kmatrix
def test_jumbo_frames_arrive_whole_at_xdp(veth):
    """MTU 9000: a frame larger than a page reaches XDP as several buffers (xdp.frags); the line
    shows its whole length, as tcpdump does. GRO is turned off on the receiving end: with it,
    tcpdump would show merged segments that never were on the wire."""
    ethtool = need_tool("ethtool")
    for prefix, name in (((), veth.outer), (("ip", "netns", "exec", veth.ns), veth.inner)):
        run(*prefix, "ip", "link", "set", name, "mtu", "9000")
    dump = tcpdump("-i", veth.outer, "-t", "-Q", "in", "tcp")
    cap = xdptcp("-i", veth.outer, "-t", "-Q", "in", "tcp")
    run(ethtool, "-K", veth.outer, "gro", "off")  # after attaching: XDP on veth turns GRO on
    # The bulk goes the other way: from the namespace, into outer.
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, veth.outer_ip], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        client = ("ip", "netns", "exec", veth.ns, sys.executable, "-c", CLIENT, veth.outer_ip)
        run(*client, timeout=scaled(60))
        server.wait(timeout=scaled(20))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    time.sleep(scaled(0.5))
    out, err, rc = cap.stop()
    ref, _, _ = dump.stop()
    assert rc == 0, err
    assert max(lengths(nonblank(ref)), default=0) > 4096, (ref, out, err)  # multi-buffer at XDP
    assert out.splitlines() == nonblank(ref)


def test_pcapng_blocks_are_well_formed(tmp_path):
    """The writer's blocks as the pcapng draft lays them out (the reader reads them back)."""
    from xdptcp.pcap import PcapngWriter, PcapReader

    path = tmp_path / "x.pcapng"
    with PcapngWriter(str(path), nano=True) as w:
        w.write_batch([(1_700_000_000_123_456_789, "eth0", b"a" * 61, 100, 0),
                       (1_700_000_000_223_456_789, "eth1", b"b" * 64, 64, 1)])  # fmt: skip
    raw = path.read_bytes()
    blocks, off = [], 0
    while off < len(raw):
        btype, blen = struct.unpack_from("=II", raw, off)
        assert blen % 4 == 0 and struct.unpack_from("=I", raw, off + blen - 4)[0] == blen
        blocks.append(btype)
        off += blen
    assert blocks == [0x0A0D0D0A, 1, 6, 1, 6]
    with PcapReader(str(path)) as r:
        assert list(r) == [
            (1_700_000_000_123_456_789, b"a" * 61, 100),
            (1_700_000_000_223_456_789, b"b" * 64, 64),
        ]


def test_bad_direction_is_a_usage_error():
    res = run(sys.executable, "-m", "xdptcp", "-i", "lo", "-Q", "sideways", check=False, cwd=ROOT)
    assert res.returncode == 2 and "invalid choice: 'sideways'" in res.stderr
