"""``xdptcp -r F`` with its lines made in the kernel (``xdptcp.textwalk``,
``bpf/xdptcp_text.bpf.c``): the same lines as the Python walk's (``XDPTCP_OFFLINE_KERNEL=0``)
and tcpdump's, on captures of every shape the tests have, with the kernel making most of them;
the one table of relative sequence numbers shared in file order; the local time across a
change of zone; the conditions under which it is used."""

from __future__ import annotations

import ctypes
import io
import os
import subprocess
import sys
import time

import pytest
from realworld.read_corpus import _TAGGED_TCP

from bench.traffic import w1_frames, write_pcap

import traffic
from conftest import ROOT, need_tool

pytestmark = pytest.mark.system


def _xdptcp(path, *args, kernel: bool, tz: str = "UTC") -> str:
    env = {**os.environ, "XDPTCP_OFFLINE_KERNEL": "1" if kernel else "0", "TZ": tz}
    return subprocess.run([sys.executable, "-m", "xdptcp", "-r", str(path), *args], env=env,
                          capture_output=True, text=True, check=True, cwd=ROOT).stdout  # fmt: skip


def _tcpdump(path, *args, tz: str = "UTC") -> str:
    """tcpdump's lines of the TCP xdptcp prints (tests/realworld/read_corpus.py's filter)."""
    return subprocess.run([need_tool("tcpdump"), "-nn", "-r", str(path), *args, _TAGGED_TCP],
                          env={**os.environ, "TZ": tz}, capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


@pytest.fixture
def kernel_made(monkeypatch):
    """The lines the kernel made and the records it handed back, counted over the runs of an
    in-process print (``made()``); the walk must load here."""
    from xdptcp import textwalk

    probe = textwalk.open_text_walker()
    assert probe is not None, "the text walk does not load here"
    probe.close()
    seen = {"lines": 0, "looks": 0, "runs": 0}
    real = textwalk.TextWalker.__init__

    def counting_init(self, *a, **kw):
        real(self, *a, **kw)
        run = self.run

        def counted():
            run()
            seen["lines"] += self.ctx.lines
            seen["looks"] += self.ctx.looks
            seen["runs"] += 1

        self.run = counted

    monkeypatch.setattr(textwalk.TextWalker, "__init__", counting_init)
    return seen


def _print(path, kernel: bool, **formatter) -> str:
    from xdptcp.mapped import MappedPcap, print_mapped
    from xdptcp.tcpdump import TextFormatter
    from xdptcp.textwalk import kernel_batches

    os.environ["XDPTCP_OFFLINE_KERNEL"] = "1" if kernel else "0"
    out = io.StringIO()
    with MappedPcap.open(str(path)) as mp:
        printed = print_mapped(mp, TextFormatter(**formatter), out, None, None, kernel_batches)
    text = out.getvalue()
    assert printed == len(text.splitlines())  # (no decoder here prints lines of its own)
    return text


@pytest.fixture
def utc_here(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("XDPTCP_OFFLINE_KERNEL", "0")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _captures(tmp_path) -> dict:
    varied = tmp_path / "varied.pcap"
    traffic.varied_pcap(varied)
    w1 = tmp_path / "w1.pcap"
    write_pcap(w1, w1_frames(3000))
    return {"varied": varied, "w1": w1}


@pytest.mark.parametrize("args", [(), ("-S",), ("-c", "37")], ids=["plain", "S", "c37"])
@pytest.mark.parametrize("capture", ["varied", "w1"])
def test_the_kernels_lines_are_the_python_walks_and_tcpdumps(tmp_path, capture, args) -> None:
    path = _captures(tmp_path)[capture]
    ours = _xdptcp(path, *args, kernel=True)
    assert ours == _xdptcp(path, *args, kernel=False)
    assert ours == _tcpdump(path, *args)
    assert len(ours.splitlines()) >= (37 if args == ("-c", "37") else 360)


@pytest.mark.kmatrix
def test_the_kernel_makes_most_lines_and_python_the_rest(tmp_path, kernel_made, utc_here):
    """The varied capture: VLAN tags (a third of its conversations), IPv6 extension headers,
    odd options, noise... are handed back; the usual segments are the kernel's."""
    path = _captures(tmp_path)["varied"]
    ours = _print(path, kernel=True)
    assert ours == _print(path, kernel=False)
    lines = len(ours.splitlines())
    assert kernel_made["lines"] > lines // 3, kernel_made
    assert kernel_made["looks"] > 100, kernel_made  # (which Python printed, or found no TCP)


@pytest.mark.kmatrix
def test_w1_is_printed_by_the_kernel_but_for_its_http_text(tmp_path, kernel_made, utc_here):
    """W1's frames are all of the usual shape: the kernel prints every line; the HTTP payloads
    that start with a word are decoded by Python, in the kernel's lines."""
    path = _captures(tmp_path)["w1"]
    ours = _print(path, kernel=True)
    assert ours == _print(path, kernel=False)
    assert kernel_made["lines"] == 3000 and kernel_made["looks"] == 0, kernel_made
    assert ": HTTP" in ours


def _many_conversations(path) -> None:
    frames = []
    for i in range(200):
        k = (i * 7) % 11
        frames.append(traffic.tcp_frame("198.18.0.2", "198.18.0.1", 40000 + k, 443,
                                        seq=1000 + 10 * i, ack=77 + i, flags="P.",
                                        payload=b"x" * 10))  # fmt: skip
        if i % 13 == 0:  # a segment the kernel hands back (tagged), in the same conversation
            frames.append(traffic.tcp_frame("198.18.0.2", "198.18.0.1", 40000 + k, 443,
                                            seq=2000 + i, ack=99, flags=".", payload=b"",
                                            vlans=[5]))  # fmt: skip
    traffic.write_pcap(path, frames)


@pytest.mark.kmatrix
def test_a_full_conversation_table_is_emptied_as_seqtracker_empties_it(
    tmp_path, monkeypatch, kernel_made, utc_here
) -> None:
    """With room for three conversations, the table is emptied whenever a fourth comes, by
    whichever side meets it: the same numbers as the Python walk's, which differ from those of
    a table with room for all."""
    from xdptcp import tcpdump

    path = tmp_path / "many.pcap"
    _many_conversations(path)
    roomy = _print(path, kernel=True)
    assert roomy == _print(path, kernel=False)
    monkeypatch.setattr(tcpdump, "FLOW_TABLE_MAX", 3)
    kernel_made.update(lines=0, looks=0)
    tight = _print(path, kernel=True)
    assert tight == _print(path, kernel=False)
    assert tight != roomy
    assert kernel_made["lines"] > 100 and kernel_made["looks"] >= 16, kernel_made


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/St_Johns", "right/UTC"])
def test_local_time_across_a_change_of_zone_and_a_leap_second(tmp_path, tz) -> None:
    """Records every 30 s across the night Berlin moves its clocks on (St John's: a zone a
    half-hour off), and around the leap second that ended 2016 (right/UTC counts it)."""
    if not os.path.exists(f"/usr/share/zoneinfo/{tz}"):
        pytest.fail(f"no zoneinfo for {tz}: tzdata is one of .ci/run's packages")
    frames = []
    start = 1679788800  # 2023-03-26 00:00 UTC
    for i in range(400):
        f = traffic.tcp_frame(
            "198.18.0.2",
            "198.18.0.1",
            40000 + i % 3,
            443,
            seq=1000 + 10 * i,
            ack=77,
            flags="P.",
            payload=b"x" * 10,
            options=(traffic.nop(), traffic.nop(), traffic.timestamp(i, i)),
        )
        frames.append(traffic.Frame((start + 30 * i) * 10**9 + 123456000, f, len(f)))
    for i in range(50):  # right/UTC prints 1483228826 as 23:59:60
        f = traffic.tcp_frame("2001:db8::2", "2001:db8::1", 40000, 443, seq=5 + i, ack=9, flags=".",
                              payload=b"")  # fmt: skip
        frames.append(traffic.Frame((1483228800 + i) * 10**9, f, len(f)))
    path = tmp_path / "night.pcap"
    traffic.write_pcap(path, frames)
    ours = _xdptcp(path, kernel=True, tz=tz)
    assert ours == _xdptcp(path, kernel=False, tz=tz)
    assert ours == _tcpdump(path, tz=tz)
    assert len(ours.splitlines()) == 450
    if tz == "right/UTC":
        assert "\n23:59:60.000000 IP6 " in ours


def test_it_is_used_for_large_files_and_the_default_lines_only(
    tmp_path, monkeypatch, kernel_made, utc_here
) -> None:
    from xdptcp import textwalk
    from xdptcp.mapped import MappedPcap
    from xdptcp.tcpdump import TextFormatter

    path = _captures(tmp_path)["w1"]
    monkeypatch.delenv("XDPTCP_OFFLINE_KERNEL")
    fmt = TextFormatter()
    with MappedPcap.open(str(path)) as mp:
        monkeypatch.setattr(textwalk, "MIN_FILE", path.stat().st_size + 1)
        assert not textwalk.usable(fmt, mp, None)  # too small to pay
        monkeypatch.setattr(textwalk, "MIN_FILE", path.stat().st_size)
        assert textwalk.usable(fmt, mp, None)
        for other in (TextFormatter(ts_mode="delta"), TextFormatter(nano=True),
                      TextFormatter(quiet=True), TextFormatter(verbose=1),
                      TextFormatter(link_level=True), TextFormatter(number=True)):  # fmt: skip
            assert not textwalk.usable(other, mp, None)
        assert not textwalk.usable(fmt, mp, lambda *a: True)  # a filter: the Python walk
        monkeypatch.setenv("XDPTCP_OFFLINE_KERNEL", "0")
        assert not textwalk.usable(fmt, mp, None)
        monkeypatch.setenv("XDPTCP_OFFLINE_KERNEL", "1")
        monkeypatch.setattr(textwalk, "MIN_FILE", path.stat().st_size + 1)
        assert textwalk.usable(fmt, mp, None)  # asked for, whatever the size
    nano = tmp_path / "nano.pcap"
    traffic.write_pcap(nano, [traffic.tcp_frame("198.18.0.2", "198.18.0.1", 1, 2)], nano=True)
    with MappedPcap.open(str(nano)) as mp:
        assert not textwalk.usable(fmt, mp, None)


def test_the_layouts_are_the_programs() -> None:
    """textwalk's offsets and its context are the program's, as clang's BTF gives them."""
    from test_record import btf_struct

    from xdptcp import textwalk
    from xdptcp.objhash import DATA

    obj = DATA / textwalk.OBJECT
    ctx = btf_struct(obj, "xt_ctx")
    assert [(m["name"], m["bits_offset"] // 8) for m in ctx["members"]] == [
        (name, getattr(textwalk.TextCtx, name).offset) for name, _ in textwalk.TextCtx._fields_
    ]
    assert ctx["size"] == ctypes.sizeof(textwalk.TextCtx)
    state = btf_struct(obj, "xt_state")
    assert state["size"] == textwalk.STATE
    assert {m["name"]: m["bits_offset"] // 8 for m in state["members"]}["count"] == (
        textwalk.COUNT_AT
    )
    out = {m["name"]: m["bits_offset"] // 8 for m in btf_struct(obj, "xt_out")["members"]}
    assert (out["e"], out["t"]) == (textwalk.STATE, textwalk.TEXT_AT)
    assert btf_struct(obj, "xt_key")["size"] == textwalk._KEY.size
    assert btf_struct(obj, "xt_word")["size"] == textwalk._WORD.size
