"""Compare ``xdptcp -r F`` with ``tcpdump -nn -r F`` on the TCP of every capture of a directory.

    python tests/realworld/read_corpus.py DIR [--link-types 1,113,...] [--flags "-S -ttt"] [-v]
                                              [--whole]

For captures made by others (tcpdump's own test captures, say): each file whose TCP lines
tcpdump prints is read by both tools (tcpdump's filter is what xdptcp prints: ``tcp``, also
behind IPv6 extension headers and, on Ethernet, up to two VLAN tags) and compared line by line,
up to ``length N`` (what follows is the payload's decoding, which xdptcp does for some
protocols only: ``xdptcp/appproto.py``); with ``--whole``, whole lines. Prints one row per link
type: files, files identical, files refused by xdptcp, lines compared, lines identical; ``-v``
lists every file that differs with its first differing line. ``--flags`` gives both tools the same
tcpdump options (-S, -t ... -ttttt, --time-stamp-precision=nano, which is xdptcp's --nano).
Nothing from the corpus is kept.
"""

from __future__ import annotations

import argparse
import re
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

_LENGTH = re.compile(r", length \d+")
# What xdptcp -r F prints, in pcap-filter: TCP, also behind IPv6 extension headers (libpcap's
# `tcp` looks at the fixed header's next header only, `protochain` walks the chain); of an
# Ethernet capture, untagged, behind one VLAN tag, or behind two (each `vlan` moves what follows
# it 4 bytes on).
_TCP = "(tcp or ip6 protochain 6)"
_TAGGED_TCP = f"{_TCP} or (vlan and ({_TCP} or (vlan and {_TCP})))"


def upto_length(line: str) -> str:
    m = _LENGTH.search(line)
    return line[: m.end()] if m else line


# -ttt and -ttttt start a line with the sign column: a space (or "-") before the time.
_RELATIVE = re.compile(r" \d\d:\d\d:\d\d\.")


def _continues(line: str) -> bool:
    """A line that goes on with the one above (application-layer decoding, tab-indented)."""
    return line[:1].isspace() and not _RELATIVE.match(line)


def records(lines: list[str]) -> list[str]:
    """The lines of each packet joined: a line and the ones that continue it."""
    out: list[str] = []
    for line in lines:
        if out and _continues(line):
            out[-1] += "\n" + line
        else:
            out.append(line)
    return out


def link_types(path: Path) -> set[int]:
    data = path.read_bytes()
    if len(data) < 24:
        return set()
    magic = struct.unpack_from("<I", data)[0]
    if magic == 0x0A0D0D0A:  # pcapng: every interface description block
        out, pos, order = set(), 0, "<"
        while pos + 12 <= len(data):
            btype = struct.unpack_from("<I", data, pos)[0]
            if btype == 0x0A0D0D0A:
                order = "<" if struct.unpack_from("<I", data, pos + 8)[0] == 0x1A2B3C4D else ">"
            btype, blen = struct.unpack_from(order + "II", data, pos)
            if btype == 1 and pos + 10 <= len(data):
                out.add(struct.unpack_from(order + "H", data, pos + 8)[0])
            if blen < 12:
                break
            pos += blen
        return out
    for order in "<>":
        if struct.unpack_from(order + "I", data)[0] in (0xA1B2C3D4, 0xA1B23C4D):
            return {struct.unpack_from(order + "I", data, 20)[0] & 0xFFFF}
    return set()


def run(cmd: list[str]) -> tuple[int, list[str], str]:
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=120)
    return r.returncode, r.stdout.splitlines(), r.stderr.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--link-types", default="0,1,9,50,101,108,113,228,229,276")
    ap.add_argument("--flags", default="", help="tcpdump options for both tools, e.g. '-S -tt'")
    ap.add_argument("-v", action="store_true")
    ap.add_argument("--whole", action="store_true", help="compare whole lines")
    args = ap.parse_args()
    flags = args.flags.split()
    ours = ["--nano" if f == "--time-stamp-precision=nano" else f for f in flags]
    wanted = {int(x) for x in args.link_types.split(",")}
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    differ = []
    for path in sorted(p for p in args.dir.iterdir() if p.suffix in (".pcap", ".pcapng")):
        lts = link_types(path)
        if not lts or not lts <= wanted:
            continue
        # `vlan` exists for Ethernet's link type only
        expr = _TAGGED_TCP if lts == {1} else _TCP
        rc, ref, _ = run(["tcpdump", "-nn", *flags, "-r", str(path), expr])
        if rc != 0 or not ref:
            continue  # tcpdump reads no TCP from it: not a TCP-bearing capture
        key = ",".join(map(str, sorted(lts)))
        row = rows[key]
        row[0] += 1
        rc, got, err = run([sys.executable, "-m", "xdptcp", *ours, "-r", str(path)])
        if rc != 0:
            row[2] += 1
            differ.append(f"{path.name}: refused: {err.splitlines()[-1] if err else rc}")
            continue
        # Lines that start with white space continue the line above with application-layer
        # decoding (OpenFlow's messages): one packet's lines are compared as one.
        ref, got = records(ref), records(got)
        if not args.whole:
            ref, got = [upto_length(x) for x in ref], [upto_length(x) for x in got]
        same = sum(a == b for a, b in zip(ref, got))
        row[3] += max(len(ref), len(got))
        row[4] += same
        if same == len(ref) == len(got):
            row[1] += 1
        else:
            first = next(
                (f"tcpdump: {a!r}\n      xdptcp:  {b!r}" for a, b in zip(ref, got) if a != b),
                f"{len(ref)} lines vs {len(got)}",
            )
            differ.append(f"{path.name}: {first}")
    print("| link type | captures | identical | refused | lines | identical lines |")
    print("|---|---|---|---|---|---|")
    total = [0] * 5
    for key in sorted(rows, key=lambda k: [int(x) for x in k.split(",")]):
        r = rows[key]
        total = [a + b for a, b in zip(total, r)]
        print(f"| {key} | {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} |")
    print(f"| all | {total[0]} | {total[1]} | {total[2]} | {total[3]} | {total[4]} |")
    if args.v:
        print("\n".join(differ))
    return 0 if total[1] == total[0] else 1


if __name__ == "__main__":
    sys.exit(main())
