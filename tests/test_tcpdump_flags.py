"""tcpdump's flags people type out of habit: -# numbers the lines, -K checks no checksum with
-v, -F reads the filter from a file, -l, -U and -p are accepted. Each beside tcpdump on the
same packets."""

from __future__ import annotations

import os
import sys

import pytest
import test_hexdump
from test_verbose import frames
from test_xdptcp_live import beside_tcpdump

from conftest import ROOT, need_tool, run
from traffic import A4, A6, B4, B6, Frame, damaged_pcap, tcp_frame, write_pcap

veth = test_hexdump.veth  # the fixture: a veth pair, tcpreplay at hand, removed after
UTC = dict(os.environ, TZ="UTC")


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """The -v cases (checksums right and wrong, headers cut, payloads decoded), the last
    record damaged (its original length below its captured length)."""
    path = tmp_path_factory.mktemp("flags") / "c.pcap"
    cases = frames()
    last = cases[-1]
    write_pcap(path, cases[:-1] + [Frame(last.ts_ns, last.data, len(last.data) - 1)])
    return path


def both(path, *args: str, expr: tuple[str, ...] = ()) -> tuple[str, str]:
    ref = run(need_tool("tcpdump"), "-nn", *args, "-r", str(path), *expr, env=UTC).stdout
    got = run(sys.executable, "-m", "xdptcp", *args, "-r", str(path), *expr, cwd=ROOT, env=UTC)
    return got.stdout, ref


@pytest.mark.parametrize(
    "args",
    [
        ("-#",),
        ("-#", "-v"),
        ("-#", "-X"),
        ("-#", "-e", "-q"),
        ("-K", "-v"),
        ("-K", "-vv"),
        ("-X",),
        ("-X", "-v"),
    ],
)
def test_as_tcpdump_prints_them(capture, args) -> None:
    """(With -X, the headers cut where tcpdump's printer reads past the capture, an IPv6
    routing header or fragment header, IPv4 options with -v: the whole frame is dumped.)"""
    got, ref = both(capture, *args)
    assert got == ref
    if "-#" in args:
        lines = [ln for ln in ref.splitlines() if ln[:1] == " " and ln[5:7] == "  "]
        assert [int(ln[:5]) for ln in lines] == list(range(1, len(frames()) + 1))
        assert "[Invalid header: len(" in lines[-1]  # the damaged record is numbered too
    if "-K" in args:
        assert "(tos 0x0" in got and "cksum" not in got


def test_a_damaged_file_is_numbered_up_to_its_damage(capture, tmp_path) -> None:
    cut = damaged_pcap(capture, tmp_path / "cut.pcap", 3, 20)
    got = run(sys.executable, "-m", "xdptcp", "-#", "-r", str(cut), cwd=ROOT, check=False)
    ref = run(need_tool("tcpdump"), "-nn", "-#", "-r", str(cut), check=False)
    assert (got.returncode, got.stdout) == (1, ref.stdout)
    assert got.stdout.splitlines()[-1].startswith("    3  ")


def test_the_filter_from_a_file(capture, tmp_path) -> None:
    path = tmp_path / "web.filter"
    path.write_text("# the web\nport 80   # plain\n  or port 21\n")
    got, ref = both(capture, "-F", str(path))
    assert got == ref and ref.count("\n") == 5
    said = run(sys.executable, "-m", "xdptcp", "-F", str(path), "-r", str(capture), "port", "53",
               cwd=ROOT, check=False)  # fmt: skip
    assert (said.returncode, said.stderr) == (
        2, "xdptcp: give the filter in -F FILE or on the command line, not both\n"
    )  # fmt: skip
    gone = tmp_path / "none.filter"
    said = run(sys.executable, "-m", "xdptcp", "-F", str(gone), "-r", str(capture), cwd=ROOT,
               check=False)  # fmt: skip
    assert (said.returncode, said.stderr) == (2, f"xdptcp: -F {gone}: No such file or directory\n")
    said = run(sys.executable, "-m", "xdptcp", "-d", "-F", str(path), "port", "53", cwd=ROOT,
               check=False)  # fmt: skip
    assert said.returncode == 2 and "not both" in said.stderr
    # -d shows the program the file's filter compiles to
    listing = run(sys.executable, "-m", "xdptcp", "-d", "-F", str(path), cwd=ROOT).stdout
    assert (
        listing == run(sys.executable, "-m", "xdptcp", "-d", "port 80 or port 21", cwd=ROOT).stdout
    )


def test_habits_are_accepted(capture) -> None:
    plain = run(sys.executable, "-m", "xdptcp", "-r", str(capture), cwd=ROOT).stdout
    for flag in ("-l", "-U", "-p", "--packet-buffered", "--no-promiscuous-mode"):
        said = run(sys.executable, "-m", "xdptcp", flag, "-r", str(capture), cwd=ROOT)
        assert said.stdout == plain, flag


def test_json_refuses_numbers() -> None:
    got = run(sys.executable, "-m", "xdptcp", "-r", "-", "--json", "-#", cwd=ROOT, check=False)
    assert (got.returncode, got.stderr) == (2, "xdptcp: -# numbers text lines, not --json\n")


@pytest.mark.system
def test_a_live_capture_numbers_its_lines_as_tcpdump_does(veth, tmp_path) -> None:
    pcap = tmp_path / "n.pcap"
    sent = [tcp_frame(A4, B4, 40000 + i, 80, flags="S") for i in range(3)]
    sent += [tcp_frame(A6, B6, 40010, 443, flags="PA", payload=b"x" * 10, vlans=(9,))]
    write_pcap(pcap, sent)
    out, err, rc, ref = beside_tcpdump(veth, pcap, ("-Q", "in", "-t", "-#"), "tcp or vlan")
    assert rc == 0, err
    assert ref.rstrip("\n").splitlines()[-1].startswith("    4  ")
    assert out + "\n" == ref
