"""bench/w1_flood.py's CPU columns: a tool's CPU seconds and, of them, the kernel's (system)."""

from __future__ import annotations

import sys

from bench import common, w1_flood


def test_user_and_system_seconds_are_read_apart_and_sum_to_the_cpu_seconds(
    monkeypatch, tmp_path
) -> None:
    # utime 150, stime 30, cutime 20, cstime 10 ticks; a command name with spaces and ')'
    stat = tmp_path / "stat"
    fields = ["S"] + ["0"] * 10 + ["150", "30", "20", "10"] + ["0"] * 30
    stat.write_text("4242 (a (b) c) " + " ".join(fields) + "\n")
    monkeypatch.setattr(common, "Path", lambda _: stat)
    tick = common.CLK_TCK
    assert common.user_system_seconds(4242) == (150 / tick, 30 / tick)
    assert common.user_system_seconds(4242, children=True) == (170 / tick, 40 / tick)
    assert common.cpu_seconds(4242) == 180 / tick
    assert common.cpu_seconds(4242, children=True) == 210 / tick


def test_a_tool_that_spends_in_the_kernel_shows_it_as_system_time() -> None:
    # a loop of Python with no system call in it, then 16 GB read from /dev/zero: the reads
    # are the kernel's work (filling the buffer), the loop the tool's own
    child = (
        "import os, sys, time\n"
        "x = 0\n"
        "for i in range(10**7): x += i\n"
        "fd = os.open('/dev/zero', os.O_RDONLY)\n"
        "for _ in range(8000): os.read(fd, 1 << 21)\n"
        "print('done', file=sys.stderr, flush=True)\n"
        "time.sleep(30)\n"
    )
    tool = common.Tool([sys.executable, "-c", child])
    try:
        tool.wait_ready("done", timeout=60)
    finally:
        res = tool.stop()
    assert res.system_s is not None
    user = res.cpu_s - res.system_s
    assert user >= 0.15, res
    assert res.system_s >= 0.1, res


def _sample(tool: str, cpu: float, system: float) -> w1_flood.Sample:
    return w1_flood.Sample(tool, 1000, 1000, 0, 0, cpu, 1.0, 4096, "", 0.1, system)


def test_the_w1_table_shows_the_median_system_seconds_of_each_tool(monkeypatch) -> None:
    monkeypatch.setattr(w1_flood, "object_id", lambda: "0123456789ab")
    monkeypatch.setattr(w1_flood, "cpu_split", lambda: (None, None))
    samples = [
        w1_flood.Sample("no capture", 1000, None, None, 0, None, 1.0, None),
        _sample("xdptcp text", 2.0, 0.30),
        _sample("xdptcp text", 2.2, 0.10),
        _sample("xdptcp text", 2.1, 0.20),
        _sample("tcpdump text", 1.5, 0.70),
    ]
    text = w1_flood.report(samples, 1000, 3, "0.10")
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    column = header.index("of which system")
    assert header[column - 1] == "of which start-up"
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == len(header):
            rows[cells[0]] = cells
    assert rows["xdptcp text"][column] == "0.20"
    assert rows["tcpdump text"][column] == "0.70"
    assert rows["no capture"][column] == "-"
