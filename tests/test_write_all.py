"""Live lines reach a slow reader whole when the capture is stopped by a signal: with the pipe
full, SIGINT interrupts the write part way, and CPython's buffered writer drops the rest though
the handler returns (xdptcp's handler only sets a flag). ``process.write_all`` writes to the end.
Reading the pipe only after the signal has landed makes the part-way write happen each time
(read at once, the writer often finds room again before it looks at the signal); each form is
tried a number of times anyway."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

CHILD = """
import signal, sys, threading
from xdptcp.process import write_all
stop = threading.Event()
signal.signal(signal.SIGINT, lambda s, f: stop.set())
sys.stderr.write("ready\\n"); sys.stderr.flush()
write_all(sys.stdout, "x" * 99_999 + "\\n")  # more than a pipe holds
"""


def interrupted_output(child: str) -> list[bytes]:
    """What ``child`` writes to a pipe nobody reads until SIGINT has reached it, blocked on the
    full pipe; a dozen times."""
    outs = []
    for _ in range(12):
        p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
        assert p.stderr.readline() == b"ready\n"
        time.sleep(0.1)  # the child is blocked on the full pipe
        p.send_signal(signal.SIGINT)
        time.sleep(0.1)  # the signal ends the blocked write before the pipe is read
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        outs.append(out)
    return outs


def test_a_write_interrupted_by_a_signal_is_finished() -> None:
    for out in interrupted_output(CHILD):
        assert len(out) == 100_000


PCAP_CHILD = """
import signal, sys, threading
from xdptcp.pcap import PcapWriter
stop = threading.Event()
signal.signal(signal.SIGINT, lambda s, f: stop.set())
sys.stderr.write("ready\\n"); sys.stderr.flush()
with PcapWriter("-") as w:
    w.write_records(b"x" * 100_000)  # more than a pipe holds
"""


def test_a_capture_file_on_stdout_interrupted_by_a_signal_is_finished() -> None:
    """The same for ``-w -``: the file's header and every record reach the reader."""
    for out in interrupted_output(PCAP_CHILD):
        assert len(out) == 24 + 100_000 and out[24:] == b"x" * 100_000


GATHERED_CHILD = """
import signal, sys, threading
from xdptcp.capture import FileRecords
from xdptcp.pcap import PcapWriter
stop = threading.Event()
signal.signal(signal.SIGINT, lambda s, f: stop.set())
sys.stderr.write("ready\\n"); sys.stderr.flush()
# 3,000 slots of 64 bytes, each holding 40 bytes of a record and 24 of padding: 120,000 bytes
# gathered by writev (more than a pipe holds), in pieces of 1,024.
blob = memoryview(b"".join(b"%039d\\n" % i + b"-" * 24 for i in range(3000)))
with PcapWriter("-") as w:
    w.write_file_records(FileRecords(blob, 0, 64, [24] * 3000, 16))
"""


def test_records_gathered_to_stdout_interrupted_by_a_signal_are_finished() -> None:
    """The same for the records a live ``-w -`` hands to writev from the ring: every record,
    whole and in order, though the signal cut a writev part way."""
    want = b"".join(b"%039d\n" % i for i in range(3000))
    for out in interrupted_output(GATHERED_CHILD):
        assert out[24:] == want
