"""``-r F`` on a mapped classic pcap (``xdptcp.mapped``: the record walk and the common segment
in one loop, options remembered by their bytes) prints what the general reader prints, line for
line: on the varied capture, on W1's mix of option lists, on option lists made at random (with
SACK blocks, timestamps not first, lengths that do not fit), in every timestamp mode, with a
count, a filter, and on a damaged file. The general reader is the reference (its lines are held
to tcpdump's by test_tcpdump_format.py)."""

from __future__ import annotations

import io
import random
import struct

import pytest

from xdptcp.clock import TS_MODES
from xdptcp.jsonfmt import JsonFormatter
from xdptcp.mapped import MappedPcap
from xdptcp.pcap import PcapError
from xdptcp.pcapfilter import compile_filter
from xdptcp.readfile import print_file
from xdptcp.tcpdump import TextFormatter

import traffic


@pytest.fixture(autouse=True)
def _utc(utc):
    """Every test here prints local times: in UTC, as the references were made."""


def both(path, make, count=None, expr=None) -> tuple[str, str]:
    """(mapped, general) output of the same file with fresh formatters."""
    flt = compile_filter(expr) if expr else None
    keep = flt.matches_packet if flt else None
    fast, slow = io.StringIO(), io.StringIO()
    assert MappedPcap.open(str(path)) is not None
    n1 = print_file(str(path), make(), fast, count, keep, flt.in_place if flt else None)
    with open(path, "rb") as f:  # a file object: the general reader
        n2 = print_file(f, make(), slow, count, keep)
    assert n1 == n2
    return fast.getvalue(), slow.getvalue()


def random_options(rnd: random.Random, seq: int) -> list[bytes]:
    """An option list of the kinds the fast paths know, sometimes malformed."""
    pick = []
    if rnd.random() < 0.6:
        pick.append(b"\x01\x01" + traffic.timestamp(rnd.getrandbits(32), rnd.getrandbits(32)))
    kinds = ["mss", "ws", "sackok", "sack", "nop", "ts", "eol", "bad", "md5"]
    for _ in range(rnd.randrange(4)):
        k = rnd.choice(kinds)
        if k == "mss":
            pick.append(traffic.mss(rnd.choice((1460, 1448, 536))))
        elif k == "ws":
            pick.append(b"\x01" + traffic.wscale(rnd.randrange(15)))
        elif k == "sackok":
            pick.append(b"\x01\x01" + traffic.sack_ok())
        elif k == "sack":
            blocks = [
                (seq + rnd.randrange(1 << 20), seq + rnd.randrange(1 << 21))
                for _ in range(rnd.randrange(1, 4))
            ]
            pick.append(b"\x01\x01" + traffic.sack(*blocks))
        elif k == "ts":
            pick.append(traffic.timestamp(rnd.getrandbits(32), rnd.getrandbits(32)))
        elif k == "eol":
            pick.append(traffic.eol() + bytes(rnd.randrange(3)))
        elif k == "bad":
            pick.append(bytes([rnd.choice((5, 8, 2, 99)), rnd.randrange(12)]))
        else:
            pick.append(traffic.md5())
    opts = b"".join(pick)[:40]
    return [opts]


def option_frames(seed: int = 5, count: int = 3000) -> list[bytes]:
    rnd = random.Random(seed)
    flows = [("198.18.0.1", "198.18.0.2", 40000, 443), ("2001:db8::1", "2001:db8::2", 40001, 80),
             ("198.18.0.3", "198.18.0.3", 7, 7)]  # fmt: skip
    frames = []
    layouts = [random_options(rnd, 0) for _ in range(12)]  # repeated: the caches and plans
    for i in range(count):
        src, dst, sp, dp = rnd.choice(flows)
        if rnd.random() < 0.5:
            src, dst, sp, dp = dst, src, dp, sp
        seq = rnd.getrandbits(32)
        if rnd.random() < 0.7:
            opts = layouts[rnd.randrange(len(layouts))]
            if opts[0][:4] == b"\x01\x01\x08\x0a":  # the same layout, other values
                opts = [opts[0][:4] + struct.pack("!II", i, i * 7) + opts[0][12:]]
        else:
            opts = random_options(rnd, seq)
        flags = rnd.choice(("A", "PA", "S", "SA", "FA", "R", "RA", "UA", "", "E"))
        frames.append(
            traffic.tcp_frame(
                src,
                dst,
                sp,
                dp,
                seq=seq,
                ack=rnd.getrandbits(32),
                flags=flags,
                options=opts,
                payload=bytes(rnd.choice((0, 0, 5, 100))),
                urg=rnd.randrange(3),
            )  # fmt: skip
        )
    return frames


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mapped")
    varied = d / "varied.pcap"
    traffic.varied_pcap(varied)
    nano = d / "nano.pcap"
    traffic.varied_pcap(nano, nano=True)
    opts = d / "options.pcap"
    traffic.write_pcap(opts, option_frames(), step_ns=7_777_777)
    early = d / "early.pcap"  # the first second of the epoch: "ts" below one second
    traffic.write_pcap(early, option_frames(count=300), start_ts=0.000001, step_ns=1_000_001)
    w1 = d / "w1.pcap"
    from bench.traffic import w1_frames, write_pcap

    write_pcap(w1, w1_frames(5000))
    return {"varied": varied, "nano": nano, "options": opts, "w1": w1, "early": early}


@pytest.mark.parametrize("name", ["varied", "nano", "options", "w1", "early"])
def test_text_lines_are_the_general_readers(files, name) -> None:
    fast, slow = both(files[name], TextFormatter)
    assert fast == slow and fast.count("\n") > 100


@pytest.mark.parametrize("mode", TS_MODES)
@pytest.mark.parametrize("absolute", [False, True])
def test_every_timestamp_mode_and_absolute_sequence_numbers(files, mode, absolute) -> None:
    for name in ("varied", "nano", "options"):
        fast, slow = both(files[name], lambda: TextFormatter(ts_mode=mode, absolute_seq=absolute))
        assert fast == slow
    fast, slow = both(files["nano"], lambda: TextFormatter(ts_mode=mode, nano=True))
    assert fast == slow


@pytest.mark.parametrize("name", ["varied", "options", "w1", "early", "nano"])
def test_json_lines_are_the_general_readers(files, name) -> None:
    fast, slow = both(files[name], JsonFormatter)
    assert fast == slow
    fast, slow = both(files[name], lambda: JsonFormatter(absolute_seq=True))
    assert fast == slow


@pytest.mark.parametrize("nano", [False, True], ids=["us-file", "ns-file"])
def test_json_of_times_past_the_fields_usual_range_is_the_general_readers(tmp_path, nano) -> None:
    """Records in the first second of 1970, fractions of a second or more, seconds past bit 31:
    the walk makes "ts" and "ts_ns" of these from the nanoseconds, as the general formatter."""
    per_sec = 1_000_000_000 if nano else 1_000_000
    fields = [(1418145369, per_sec - 1), (0, 5), (0, per_sec - 1), (1418145370, per_sec),
              (1418145371, 0xFFFFFFFF), (2147483648, 1), (0xFFFFFFFF, 0),
              (1418145372, 7)]  # fmt: skip
    head = struct.pack("=IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    out = [head]
    for i, (sec, frac) in enumerate(fields):
        ts = [b"\x01\x01" + traffic.timestamp(i, 9)]
        f = traffic.tcp_frame("198.18.0.2", "198.18.0.1", 40000, 443, seq=1000 + i, ack=77,
                              flags=".", options=ts)  # fmt: skip
        out.append(struct.pack("=IIII", sec, frac, len(f), len(f)) + f)
    path = tmp_path / "fields.pcap"
    path.write_bytes(b"".join(out))
    fast, slow = both(path, JsonFormatter)
    assert fast == slow and fast.count("\n") == len(fields)
    assert '"ts":0.000000,"ts_ns":5' in fast if nano else '"ts":0.000005,"ts_ns":5000' in fast


@pytest.mark.parametrize("make", [TextFormatter, JsonFormatter])
def test_frames_with_one_vlan_tag_are_walked_as_the_general_reader_prints_them(tmp_path, make):
    """Behind one 802.1Q tag (a priority and the DEI set too) the common segment is made by the
    walk itself, as the general reader makes it: no frame goes to ``format``. Two tags, and
    an 802.1ad one, stay the general reader's."""
    rnd = random.Random(8)
    frames = []
    for i in range(400):
        src, dst = rnd.choice((("198.18.0.1", "198.18.0.2"), ("2001:db8::1", "2001:db8::2")))
        opts = rnd.choice(([], [b"\x01\x01" + traffic.timestamp(i, 7 * i)]))
        frames.append(traffic.tcp_frame(src, dst, 40000, 443, seq=1000 + 100 * i, ack=77,
                                        flags=rnd.choice(("A", "PA", "S", "SA")),
                                        options=opts, payload=bytes(rnd.choice((0, 100))),
                                        vlans=(rnd.choice((1, 10, 4094)),)))  # fmt: skip
    one = tmp_path / "one-tag.pcap"
    traffic.write_pcap(one, frames)
    tagged = []
    for frame in frames:  # priority 5 and the DEI in the tag control information
        tci = struct.unpack_from("!H", frame, 14)[0] | 0xB000
        tagged.append(frame[:14] + struct.pack("!H", tci) + frame[16:])
    traffic.write_pcap(tmp_path / "prio.pcap", tagged)
    calls = []

    def counted():
        f = make()
        general = f.format

        def format(*args, **kwargs):
            calls.append(args)
            return general(*args, **kwargs)

        f.format = format
        return f

    for path in (one, tmp_path / "prio.pcap"):
        fast, slow = both(path, counted)
        assert fast == slow and fast.count("\n") == 400
        if make is JsonFormatter:
            assert '"vlan":[10],' in fast and '"vlan":[4094],' in fast
    assert len(calls) == 2 * 400  # the general reader's, none of the walk's
    double = tmp_path / "two-tags.pcap"
    traffic.write_pcap(double, [traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1, 2, vlans=(5, 6)),
                                traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1, 2, vlans=(5, 6),
                                                  qinq=True)])  # fmt: skip
    fast, slow = both(double, make)
    assert fast == slow and fast.count("\n") == 2


@pytest.mark.parametrize("make", [TextFormatter, JsonFormatter])
def test_count_and_filter(files, make) -> None:
    for count in (1, 5, 1024, 1025, 3000):
        fast, slow = both(files["options"], make, count=count)
        assert fast == slow and fast.count("\n") == count
    for expr in ("port 5001", "ip6", "tcp[13] & 2 != 0"):
        fast, slow = both(files["varied"], make, expr=expr)
        assert fast == slow and fast


@pytest.mark.parametrize("cut", [3, 20, 1, "bogus"])
def test_a_damaged_file_fails_as_the_general_reader_does(files, tmp_path, cut) -> None:
    data = files["w1"].read_bytes()
    bad = tmp_path / "bad.pcap"
    if cut == "bogus":  # a record header claiming more than any record may hold
        data += struct.pack("=IIII", 1, 2, 300_000, 300_000) + bytes(100)
    else:
        data = data[: len(data) - cut]
    bad.write_bytes(data)
    outcomes = []
    for source in (str(bad), open(bad, "rb")):  # noqa: SIM115
        out = io.StringIO()
        with pytest.raises(PcapError) as e:
            print_file(source, TextFormatter(), out)
        outcomes.append((str(e.value), out.getvalue()))
    assert outcomes[0] == outcomes[1]


def test_other_files_take_the_general_reader(tmp_path) -> None:
    frame = traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1, 2, flags="A")
    big = tmp_path / "big.pcap"
    traffic.write_pcap(big, [frame], big_endian=True)
    assert MappedPcap.open(str(big)) is None
    raw = tmp_path / "raw.pcap"
    traffic.write_pcap(raw, [frame[14:]], linktype=101)
    assert MappedPcap.open(str(raw)) is None
    assert MappedPcap.open(str(tmp_path / "missing.pcap")) is None


@pytest.mark.parametrize("make", [TextFormatter, JsonFormatter])
def test_frames_longer_than_16_bits_on_the_wire(tmp_path, make) -> None:
    """Wire lengths past 65,535 (a GSO packet seen on egress; a record that says so): the walk
    prints what the general reader prints (the JSON walk leaves them to ``format``)."""
    frames = option_frames(seed=9, count=200)
    path = tmp_path / "long.pcap"
    ts = 1_700_000_000_000_000_000
    traffic.write_pcap(path, [(ts + i * 1000, f, len(f) + (i % 3) * 40_000) for i, f in
                              enumerate(frames)])  # fmt: skip
    fast, slow = both(path, make)
    assert fast == slow and fast.count("\n") == 200
    if make is JsonFormatter:
        assert '"wire_len":80' in fast


@pytest.mark.parametrize("chunk", [97, 1000, 65536])
def test_records_across_chunks(files, monkeypatch, chunk) -> None:
    """The file is read in chunks: records cut by a chunk's end, and records longer than a
    chunk, print what the general reader prints; so does a damaged file."""
    monkeypatch.setattr("xdptcp.mapped.CHUNK", chunk)
    for name in ("varied", "options", "w1"):
        for make in (TextFormatter, JsonFormatter):
            fast, slow = both(files[name], make)
            assert fast == slow and fast.count("\n") > 100
    fast, slow = both(files["options"], TextFormatter, count=1025)
    assert fast == slow


@pytest.mark.parametrize("chunk", [97, 4096])
@pytest.mark.parametrize("cut", [3, 20, "bogus"])
def test_a_damaged_file_across_chunks(files, tmp_path, monkeypatch, chunk, cut) -> None:
    monkeypatch.setattr("xdptcp.mapped.CHUNK", chunk)
    test_a_damaged_file_fails_as_the_general_reader_does(files, tmp_path, cut)


def test_a_file_cut_while_it_is_read(tmp_path) -> None:
    """Another process cuts the file short while ``xdptcp -r`` reads it: the lines of the
    records before the cut, then one line naming the record cut (a mapped file's reader would
    die of SIGBUS at the first page past the new end)."""
    import os
    import subprocess
    import sys

    from bench.traffic import w1_frames, write_pcap

    path = tmp_path / "long.pcap"
    write_pcap(path, w1_frames(150_000))  # some 19 MB: several chunks
    size = os.path.getsize(path)
    env = dict(os.environ, TZ="UTC")
    proc = subprocess.Popen([sys.executable, "-m", "xdptcp", "-r", str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    # it runs; then blocks on the full pipe, inside chunk 1 (read from the pipe itself: what a
    # buffered read takes beyond 4096 bytes, communicate() would not see)
    first = os.read(proc.stdout.fileno(), 4096)
    os.truncate(path, size * 2 // 3 + 5)  # past the first chunk, inside a record
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    ref = subprocess.run([sys.executable, "-m", "xdptcp", "-r", str(path)], env=env,
                         capture_output=True)  # fmt: skip
    assert ref.returncode == 1
    assert first + out == ref.stdout
    lines = err.decode().splitlines()
    assert len(lines) == 1 and ": truncated data (" in lines[0], err
    assert lines[0] == ref.stderr.decode().splitlines()[0]
