"""Where ``xdptcp -r F``'s time goes, as text and as ``--json``: its record walk built up stage by
stage on the W1 pcap, beside tcpdump's whole cost per packet on the same file, in one run.

    python -m bench text_stages        (or: .venv/bin/python bench/text_stages.py [--packets N])

Each stage is a loop over the file's records as ``xdptcp.mapped`` reads them (one buffer, read in
1 MiB chunks) doing a little more than the stage before, in the way ``TextFormatter.mapped_lines``
does it:

1. walk: unpack each record's header and EtherType, step to the next;
2. + fields: unpack the IP and TCP header fields (``_FAST4X`` / ``_FAST6X``);
3. + per flow: look up the conversation's text and its sequence bases (two dict lookups);
4. + line: make a line of the shape of a usual one (timestamp, addresses, flags, seq, ack, win,
   options, length) with one f-string and keep it;
5. mapped_lines: the real loop, every check and cache included (what ``xdptcp -r`` runs);
6. + output: and the lines joined and written to /dev/null in batches, as ``print_mapped``.

Stages 1-4 print nothing true: they measure what CPython charges for each kind of work, the
floor under any Python loop that does it. The JSON table runs the same stages with an object
of the usual one's shape in stage 4 (every key, the nop,nop,TS option list) and
``JsonFormatter`` in 5 and 6, beside the same tcpdump figure: ``--json``'s target is its CPU
against tcpdump's text. CPU seconds (``time.process_time``) per stage, median
of ``--repeat`` runs; tcpdump's is its process's CPU (``os.wait4``) less its start-up (the same
run on a file with no record). The ratio column divides by tcpdump's per-packet cost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, table  # noqa: E402
from bench.offline import _cpu  # noqa: E402
from bench.traffic import w1_pcap  # noqa: E402
from xdptcp.clock import D3  # noqa: E402
from xdptcp.jsonfmt import JsonFormatter  # noqa: E402
from xdptcp.mapped import (  # noqa: E402
    _ETH_IP,
    _ETH_IPV6,
    _FAST4X,
    _FAST6X,
    _REC_ETYPE,
    MappedPcap,
    print_mapped,
)
from xdptcp.tcpdump import TextFormatter, numbers  # noqa: E402


def _records(path: Path):
    """(buffer, position, end) of each whole record header, as the walk sees them."""
    mp = MappedPcap.open(str(path))
    assert mp is not None, f"{path}: not a pcap the mapped walk reads"
    return mp


def walk(path: Path, upto: int, json: bool = False) -> int:
    """Stages 1-4 (``upto``): the loop, doing the first ``upto`` kinds of work; with ``json``,
    stage 4 makes an object of the usual one's shape instead of a line."""
    mp = _records(path)
    num = numbers()
    flows: dict = {}
    seqs: dict = {}
    kept: list = []
    n = 0
    with mp:
        for mm, pos, end in mp.chunks():
            while pos + 30 <= end:
                sec, frac, incl, orig, etype = _REC_ETYPE(mm, pos)
                at = pos + 16
                if at + incl > end:
                    break
                pos = at + incl
                n += 1
                if upto < 2:
                    continue
                if etype == _ETH_IP and at + 66 <= end:
                    _, ip_len, _, ttl, _, raw, seq, ack, offx, flags, win, _, _, val, ecr = _FAST4X(
                        mm, at + 14
                    )
                elif etype == _ETH_IPV6 and at + 86 <= end:
                    _, ip_len, _, ttl, raw, seq, ack, offx, flags, win, _, _, val, ecr = _FAST6X(
                        mm, at + 14
                    )
                else:
                    continue
                if upto < 3:
                    continue
                head = flows.get(raw)
                if head is None:
                    if json:
                        head = f'"ip":4,"src":"{raw[:4].hex()}","dst":"x","sport":1,"dport":80,'
                    else:
                        head = f"IP {raw.hex()} > x.80: Flags ["
                    flows[raw] = head
                base = seqs.get(raw)
                if base is None:
                    base = seqs[raw] = (seq, ack)
                if upto < 4:
                    continue
                if json:
                    ms, us = D3[frac // 1000], D3[frac % 1000]
                    kept.append(
                        f'{{"ts":{sec}.{ms}{us},"ts_ns":{sec}{ms}{us}000,"ifname":"",'
                        f'"direction":"","wire_len":{num[orig]},"cap_len":{num[incl]},{head}'
                        f'"seq":{(seq - base[0]) & 0xFFFFFFFF},'
                        f'"ack":{(ack - base[1]) & 0xFFFFFFFF},'
                        f'"flags":".","flag_names":["ACK"],"win":{num[win]},"urg":0,"options":'
                        f'[{{"kind":1,"name":"nop","values":[]}},{{"kind":1,"name":"nop",'
                        f'"values":[]}},{{"kind":8,"name":"TS","values":[{val},{ecr}]}}],'
                        f'"tcp_hdr_len":{num[offx]},"payload_len":{num[ip_len]},"vlan":[],'
                        f'"ttl":{num[ttl]}}}'
                    )
                    if len(kept) >= 1024:
                        kept = []
                    continue
                kept.append(
                    f"{sec}{D3[frac // 1000]}{D3[frac % 1000]} {head}.], seq "
                    f"{(seq - base[0]) & 0xFFFFFFFF}:{ip_len}, ack {(ack - base[1]) & 0xFFFFFFFF}, "
                    f"win {win}, options [nop,nop,TS val {val} ecr {ecr}], length {offx}"
                )
                if len(kept) >= 1024:
                    kept = []
            mp.rest = pos
    return n


def mapped_lines(path: Path, formatter=TextFormatter) -> int:
    """Stage 5: ``formatter``'s ``mapped_lines``, the lines kept in batches and dropped."""
    n = 0
    with _records(path) as mp:
        for lines in formatter().mapped_lines(mp, None, None):
            n += len(lines)
    return n


def with_output(path: Path, formatter=TextFormatter) -> int:
    """Stage 6: ``print_mapped`` to /dev/null, as ``xdptcp -r F > /dev/null``."""
    with _records(path) as mp, open(os.devnull, "w") as out:
        return print_mapped(mp, formatter(), out, None, None)


def tcpdump_cpu(path: Path) -> float:
    """CPU seconds of ``tcpdump -nn -r path > /dev/null`` (``bench.offline``'s measure)."""
    return _cpu([shutil.which("tcpdump") or "tcpdump", "-nn", "-r", str(path)], None)


def cpu(fn, *args) -> tuple[float, int]:
    start = time.process_time()
    n = fn(*args)
    return time.process_time() - start, n


STAGES = [
    ("1. walk: record header and EtherType", lambda p: walk(p, 1)),
    ("2. + IP and TCP fields (one unpack)", lambda p: walk(p, 2)),
    ("3. + per-flow text and sequence bases", lambda p: walk(p, 3)),
    ("4. + a usual line's f-string, kept", lambda p: walk(p, 4)),
    ("5. mapped_lines (all of -r's checks)", mapped_lines),
    ("6. + join and write to /dev/null", with_output),
]
JSON_STAGES = [
    ("1. walk: record header and EtherType", lambda p: walk(p, 1, True)),
    ("2. + IP and TCP fields (one unpack)", lambda p: walk(p, 2, True)),
    ("3. + per-flow text and sequence bases", lambda p: walk(p, 3, True)),
    ("4. + a usual object's f-string, kept", lambda p: walk(p, 4, True)),
    ("5. mapped_lines (all of -r --json's checks)", lambda p: mapped_lines(p, JsonFormatter)),
    ("6. + join and write to /dev/null", lambda p: with_output(p, JsonFormatter)),
]


def run(repeat: int = 3, packets: int = 1_000_000) -> str:
    os.environ.setdefault("TZ", ":/etc/localtime")  # as bench/__main__.py sets it for tcpdump
    time.tzset()
    path = w1_pcap(packets)
    with tempfile.TemporaryDirectory() as d:
        empty = Path(d) / "empty.pcap"
        with open(path, "rb") as src:
            empty.write_bytes(src.read(24))
        sets = {"text": STAGES, "--json": JSON_STAGES}
        runs = {(kind, name): [] for kind, stages in sets.items() for name, _ in stages}
        ref: list[float] = []
        for _ in range(repeat):  # stages interleaved with tcpdump, so drift hits all alike
            ref.append(tcpdump_cpu(path) - tcpdump_cpu(empty))
            for kind, stages in sets.items():
                for name, fn in stages:
                    seconds, n = cpu(fn, path)
                    if n != packets:
                        raise RuntimeError(f"{kind} {name}: {n} records, expected {packets}")
                    runs[kind, name].append(seconds)
    ref_us = median(ref) / packets * 1e6
    tables = []
    for kind, stages in sets.items():
        rows = [["tcpdump -nn -r F (less its start-up)", f"{ref_us:.2f}", "1.00x"]]
        for name, _ in stages:
            us = median(runs[kind, name]) / packets * 1e6
            rows.append([name, f"{us:.2f}", f"{us / ref_us:.2f}x"])
        tables.append(
            table(
                f"Offline {kind} by stage: W1, {packets:,} frames, CPU µs / packet, "
                f"median of {repeat}",
                ["stage", "µs / packet", "/ tcpdump"],
                rows,
            )
        )
    return "\n".join(tables)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(run(args.repeat, args.packets))


if __name__ == "__main__":
    main()
