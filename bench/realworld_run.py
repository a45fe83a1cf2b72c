"""``python -m bench.realworld_run --bootstrap DIR --tutorial DIR``: real programs, `pybpf run`.

The programs are libbpf-bootstrap's examples (``DIR/examples/c``) and the eBPF developer
tutorial's (``DIR/src/N-name``), checked out by the user (nothing of theirs is in this tree;
CI has no network, so CI tests use bpf/tests/run_*.bpf.c, which mirror them). For each program
the script builds the object with clang against this kernel's vmlinux.h (``build/vmlinux.h``) in
a temporary directory, and, when the project ships a C user space, builds it against libbpf
(``bpftool gen skeleton`` + libbpf-dev). Then it runs ``pybpf run OBJ --json`` — and the C tool,
when there is one — makes the kernel produce events (processes it spawns, files it opens,
signals it sends, a line typed into an interactive bash), stops both with SIGINT, and compares
the fields each printed with each other and with what it did. It prints one table row per
program: what ran, what matched, or the one-line error both tools give on this kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from bench.realworld_attach import case_sockfilter, case_tc, case_uprobe
from bench.realworld_common import (
    ME,
    MULTIARCH,
    MY_COMM,
    ROOT,
    SCALE,
    VMLINUX,
    Background,
    Result,
    first_error,
    parse_json,
    pybpf_run,
    trace_pipe_lines,
)

# --- building -----------------------------------------------------------------------------------


def build_object(src: Path, out: Path) -> Path:
    obj = out / (src.name[: -len(".c")] + ".o")
    cmd = ["clang", "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86"]
    cmd += ["-I", str(src.parent), "-I", str(VMLINUX.parent), "-I", MULTIARCH]
    subprocess.run([*cmd, "-c", str(src), "-o", str(obj)], check=True, capture_output=True)
    return obj


def build_tool(src_c: Path, obj: Path, out: Path) -> Path:
    """The project's own C loader, against libbpf, with its skeleton."""
    name = obj.name[: -len(".bpf.o")]
    skel = subprocess.run(
        ["bpftool", "gen", "skeleton", str(obj)], check=True, capture_output=True, text=True
    ).stdout
    (out / f"{name}.skel.h").write_text(skel)
    for h in src_c.parent.glob("*.h"):
        shutil.copy(h, out)
    exe = out / name
    subprocess.run(
        ["cc", "-g", "-O2", "-I", str(out), str(src_c), "-lbpf", "-lelf", "-lz", "-o", str(exe)],
        check=True,
        capture_output=True,
    )
    return exe


# --- triggers -------------------------------------------------------------------------------------


def spawn(argv: list[str]) -> int:
    p = subprocess.Popen(argv)
    p.wait()
    return p.pid


def trigger_execs() -> list[int]:
    return [spawn(["/bin/true"]) for _ in range(3)]


def trigger_exit_codes() -> dict[int, int]:
    return {spawn(["sh", "-c", f"exit {code}"]): code for code in (0, 3, 7)}


def trigger_signals() -> int:
    child = subprocess.Popen(["sleep", "30"])
    os.kill(child.pid, 0)
    os.kill(child.pid, signal.SIGUSR1)
    child.wait()
    return child.pid


def trigger_opens(path: str) -> int:
    code = f"open({path!r}).close()"
    return spawn([sys.executable, "-c", code])


def trigger_bash_readline(line: str) -> int:
    """Type ``line`` into an interactive bash on a pseudo-terminal (readline reads it)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv("/bin/bash", ["bash", "--norc", "--noprofile", "-i"])
    time.sleep(0.5)
    os.write(fd, (line + "\n").encode())
    time.sleep(0.3)
    os.write(fd, b"exit\n")
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            if not os.read(fd, 4096):
                break
        except OSError:
            break
    os.waitpid(pid, 0)
    return pid


# --- the cases ------------------------------------------------------------------------------------


def _start_both(
    obj: Path, tool: Optional[Path], *args: str
) -> tuple[Background, Optional[Background]]:
    c = Background([str(tool)], cwd=tool.parent) if tool else None
    py = pybpf_run(obj, *args)
    if not py.wait_for(r"attached"):
        return py, c
    time.sleep(1.0)  # the C tool attaches too (it says nothing on stderr when it has)
    return py, c


def case_bootstrap(res: Result, obj: Path, tool: Optional[Path]) -> None:
    """bootstrap: exec and exit events of processes we spawn, C tool vs pybpf run."""
    py, c = _start_both(obj, tool)
    pids = trigger_execs()
    time.sleep(1.0)
    rc, out, err = py.stop()
    events, _, _ = parse_json(out)
    ours = set()
    for e in events:
        if e["pid"] in pids:
            last = e["exit_code"] if e["exit_event"] else e["filename"]
            ours.add(("EXIT" if e["exit_event"] else "EXEC", e["comm"], e["pid"], e["ppid"], last))
    res.pybpf_lines = [json.dumps(e) for e in events if e["pid"] in pids]
    want = {("EXEC", "true", p, ME, "/bin/true") for p in pids}
    want |= {("EXIT", "true", p, ME, 0) for p in pids}
    if c is None:
        res.status = "same events" if ours == want else "differs"
        res.detail = f"{len(ours)} of {len(want)} expected events"
        return
    _, cout, cerr = c.stop()
    theirs = set()
    for line in cout.splitlines():
        f = line.split()
        if len(f) >= 6 and f[1] in ("EXEC", "EXIT") and int(f[3]) in pids:
            last = int(f[5].strip("[]")) if f[1] == "EXIT" else f[5]
            theirs.add((f[1], f[2], int(f[3]), int(f[4]), last))
    same = ours == theirs == want
    res.status = "same events" if same else "differs"
    res.detail = (
        f"{len(ours)} events (EXEC+EXIT of {len(pids)} processes): comm, pid, ppid, "
        f"filename/exit code equal to the C tool's"
        if same
        else f"pybpf {sorted(ours)} C {sorted(theirs)} want {sorted(want)}"
    )


def case_execsnoop(res: Result, obj: Path, tool: Optional[Path]) -> None:
    """the tutorial's execsnoop (perf buffer, sys_enter_execve); its "comm" field holds the
    path given to execve (the program reads args[0] into it)."""
    py, _ = _start_both(obj, None)
    pids = trigger_execs()
    time.sleep(1.0)
    _, out, err = py.stop()
    events, _, _ = parse_json(out)
    got = sorted((e["pid"], e["ppid"], e["uid"], e["comm"]) for e in events if e["pid"] in pids)
    want = sorted((p, ME, 0, "/bin/true") for p in pids)
    res.status = "same events" if got == want else "differs"
    res.detail = f"{len(got)} perf-buffer events: pid, ppid, uid, execve path as spawned" + (
        "" if got == want else f" got {got} want {want}"
    )
    res.pybpf_lines = [json.dumps(e) for e in events if e["pid"] in pids]


def case_exitsnoop(res: Result, obj: Path, tool: Optional[Path]) -> None:
    py, _ = _start_both(obj, None)
    codes = trigger_exit_codes()
    time.sleep(1.0)
    _, out, err = py.stop()
    events, _, _ = parse_json(out)
    got = {e["pid"]: (e["ppid"], e["exit_code"], e["comm"]) for e in events if e["pid"] in codes}
    want = {p: (ME, code, "sh") for p, code in codes.items()}
    res.status = "same events" if got == want else "differs"
    res.detail = f"{len(got)} ring-buffer events: pid, ppid, exit code, comm of `sh -c 'exit N'`"
    if got != want:
        res.detail += f" got {got} want {want}"
    res.pybpf_lines = [json.dumps(e) for e in events if e["pid"] in codes]


def _printk_case(
    res: Result,
    obj: Path,
    trigger: Callable[[], int],
    expect: Callable[[int], str],
    args: tuple = (),
    what: str = "",
) -> None:
    py, _ = _start_both(obj, None, *args)
    pid = trigger()
    time.sleep(1.0)
    _, out, err = py.stop()
    _, printk, _ = parse_json(out)
    want = expect(pid)
    hits = [ln for ln in printk if want in ln]
    res.status = "same events" if hits else "differs"
    res.detail = f"bpf_printk: {what or repr(want)} seen {len(hits)}x"
    if not hits:
        res.detail += f" (of {len(printk)} lines; stderr: {first_error(err)})"
    res.pybpf_lines = hits[:3]


def case_opensnoop(res: Result, obj: Path, tool: Optional[Path]) -> None:
    """opensnoop with its pid_target (a const volatile) set to a process that opens a file."""
    code = "import sys\nsys.stdin.readline()\nopen('/etc/hostname').close()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
    py = pybpf_run(obj, "--set", f"pid_target={child.pid}")
    py.wait_for("attached")
    child.communicate("go\n")
    time.sleep(1.0)
    _, out, err = py.stop()
    _, printk, _ = parse_json(out)
    want = f"Process ID: {child.pid} enter sys openat"
    hits = [ln for ln in printk if want in ln]
    others = [ln for ln in printk if want not in ln]
    res.status = "same events" if hits and not others else "differs"
    res.detail = (
        f"bpf_printk with --set pid_target=PID: {len(hits)} openat lines of that process "
        f"(Python's own opens included), {len(others)} of others"
    )
    res.pybpf_lines = hits[:3]


def case_sigsnoop(res: Result, obj: Path, tool: Optional[Path]) -> None:
    py, _ = _start_both(obj, None)
    child = trigger_signals()
    time.sleep(1.0)
    _, out, err = py.stop()
    _, printk, _ = parse_json(out)
    sent = [f"PID {ME} ({MY_COMM[:15]}) sent signal {s}" for s in (0, int(signal.SIGUSR1))]
    ok = all(any(s in ln for ln in printk) for s in sent)
    ok = ok and sum(f"to PID {child}, ret = 0" in ln for ln in printk) == 2
    res.status = "same events" if ok else "differs"
    res.detail = "bpf_printk: kill(2) of a child with signals 0 and SIGUSR1, sender and target"
    res.pybpf_lines = [ln for ln in printk if str(child) in ln or f"PID {ME} " in ln][:4]


def case_runqlat(res: Result, obj: Path, tool: Optional[Path]) -> None:
    py, _ = _start_both(obj, None, "--hist-unit", "usecs")
    for _ in range(20):
        spawn(["/bin/true"])
    time.sleep(1.0)
    rc, out, err = py.stop()
    _, _, maps = parse_json(out)
    entries = maps.get("hists", {}).get("entries", [])
    total = sum(sum(e["value"]["slots"]) for e in entries) if entries else 0
    res.status = "runs" if total else "differs"
    res.detail = f"hists: {len(entries)} histogram(s), {total} run-queue latencies counted"
    text = subprocess.run(
        [sys.executable, "-m", "pybpf", "run", str(obj), "-d", "1", "--hist-unit", "usecs"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    res.pybpf_lines = [ln for ln in text.splitlines() if "|" in ln or "usecs" in ln][:8]


def case_minimal_bootstrap(res: Result, obj: Path, tool: Optional[Path]) -> None:
    """libbpf-bootstrap's minimal: only writes by the pid in my_pid (its C loader sets its own;
    here --set gives the pid of a process that writes)."""
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys,time\nfor _ in range(30): print('.'); time.sleep(0.1)"],
        stdout=subprocess.DEVNULL,
    )
    py = pybpf_run(obj, "--set", f"my_pid={writer.pid}")
    py.wait_for("attached")
    time.sleep(1.0)
    _, out, err = py.stop()
    writer.kill()
    writer.wait()
    _, printk, _ = parse_json(out)
    ours = [ln for ln in printk if f"BPF triggered from PID {writer.pid}." in ln]
    theirs: list[str] = []
    if tool is not None:  # its C loader prints a dot a second: the same line with its pid
        c = Background([str(tool)], cwd=tool.parent)
        lines = trace_pipe_lines(2.5)
        c.stop()
        theirs = [ln for ln in lines if f"BPF triggered from PID {c.proc.pid}." in ln]
    ok = bool(ours) and (tool is None or bool(theirs))
    res.status = "same events" if ok else "differs"
    res.detail = (
        f"bpf_printk 'BPF triggered from PID N.': pybpf run {len(ours)} lines for the writer "
        f"(--set my_pid), C loader {len(theirs)} lines for itself"
    )
    res.pybpf_lines = ours[:2]


HAS_KPROBES = Path("/sys/bus/event_source/devices/kprobe").exists()


def trigger_unlink() -> int:
    """A process that unlinks a file by a relative name (the name do_unlinkat sees)."""
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.Popen(["sh", "-c", "touch pybpf-rw-f && exec rm pybpf-rw-f"], cwd=d)
        p.wait()
    return p.pid


def _printk_both(
    res: Result,
    obj: Path,
    tool: Optional[Path],
    trigger: Callable[[], int],
    expect: Callable[[int], list[str]],
) -> None:
    """bpf_printk lines for a triggered process, from pybpf run and from the C loader (whose
    lines the script reads from trace_pipe itself, as its README says to)."""
    py = pybpf_run(obj)
    if not py.wait_for("attached"):
        _, _, err = py.stop()
        res.status, res.detail = "differs", f"pybpf: {first_error(err)}"
        return
    pid = trigger()
    time.sleep(1.0 * SCALE)
    _, out, _ = py.stop()
    _, printk, _ = parse_json(out)
    ours = [w for w in expect(pid) if any(w in ln for ln in printk)]
    theirs: list[str] = []
    if tool is not None:
        c = Background([str(tool)], cwd=tool.parent)
        time.sleep(2.0 * SCALE)
        box: list[int] = []
        t = threading.Thread(target=lambda: (time.sleep(0.5 * SCALE), box.append(trigger())))
        t.start()
        lines = trace_pipe_lines(3.0 * SCALE)
        t.join()
        c.stop()
        theirs = [w for w in expect(box[0]) if any(w in ln for ln in lines)] if box else []
    want = len(expect(pid))
    ok = len(ours) == want and (tool is None or len(theirs) == want)
    res.status = "same events" if ok else "differs"
    res.detail = f"bpf_printk: {len(ours)}/{want} expected lines from pybpf run" + (
        f", {len(theirs)}/{want} from the C loader" if tool else ""
    )
    res.pybpf_lines = [ln for ln in printk if f" {pid}" in ln][:4]


def case_kprobe(res: Result, obj: Path, tool: Optional[Path]) -> None:
    if not HAS_KPROBES:
        return case_fails(res, obj, tool)
    _printk_both(
        res,
        obj,
        tool,
        trigger_unlink,
        lambda pid: [
            f"KPROBE ENTRY pid = {pid}, filename = pybpf-rw-f",
            f"KPROBE EXIT: pid = {pid}, ret = 0",
        ],
    )


def case_ksyscall(res: Result, obj: Path, tool: Optional[Path]) -> None:
    if not HAS_KPROBES:
        return case_fails(res, obj, tool)
    comm = MY_COMM[:15]
    _printk_both(
        res,
        obj,
        tool,
        trigger_signals,
        # the program leaves out signal 0 (a mere existence check): only SIGUSR1 is printed
        lambda child: [
            f"KILL syscall called by PID {ME} ({comm}) for PID {child} with signal "
            f"{int(signal.SIGUSR1)}."
        ],
    )


def case_fails(res: Result, obj: Path, tool: Optional[Path]) -> None:
    """Programs this kernel cannot run (or that need what only their own loader gives):
    both tools' one-line answers."""
    r = subprocess.run(
        [sys.executable, "-m", "pybpf", "run", str(obj), "-d", "1", "--no-maps"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    ours = first_error(r.stderr) if r.returncode else "runs"
    theirs = ""
    if tool is not None:
        c = Background([str(tool)], cwd=tool.parent)
        time.sleep(1.5)
        crc, cout, cerr = c.stop()
        theirs = "runs" if crc in (0, -2, 130) and "Failed" not in cerr else first_error(cerr)
    if r.returncode and (tool is None or theirs != "runs"):
        res.status = "fails alike" if tool else "fails (one line)"
    elif r.returncode:
        res.status = "pybpf fails, C runs"
    else:
        res.status = "runs"
    res.detail = f"pybpf: {ours}" + (f" | C: {theirs}" if tool else "")


# name, project, source (relative to the project's directory), C loader or None, how to check
CASES: list[tuple[str, str, str, Optional[str], Callable]] = [
    ("minimal", "bootstrap", "examples/c/minimal.bpf.c", "minimal.c", case_minimal_bootstrap),
    ("bootstrap", "bootstrap", "examples/c/bootstrap.bpf.c", "bootstrap.c", case_bootstrap),
    (
        "bootstrap_legacy",
        "bootstrap",
        "examples/c/bootstrap_legacy.bpf.c",
        "bootstrap_legacy.c",
        case_bootstrap,
    ),
    ("uprobe", "bootstrap", "examples/c/uprobe.bpf.c", "uprobe.c", case_uprobe),
    ("fentry", "bootstrap", "examples/c/fentry.bpf.c", "fentry.c", case_fails),
    ("kprobe", "bootstrap", "examples/c/kprobe.bpf.c", "kprobe.c", case_kprobe),
    ("ksyscall", "bootstrap", "examples/c/ksyscall.bpf.c", "ksyscall.c", case_ksyscall),
    ("lsm", "bootstrap", "examples/c/lsm.bpf.c", "lsm.c", case_fails),
    ("tc", "bootstrap", "examples/c/tc.bpf.c", "tc.c", case_tc),
    ("usdt", "bootstrap", "examples/c/usdt.bpf.c", "usdt.c", case_fails),
    ("sockfilter", "bootstrap", "examples/c/sockfilter.bpf.c", "sockfilter.c", case_sockfilter),
    ("task_iter", "bootstrap", "examples/c/task_iter.bpf.c", None, case_fails),
    (
        "1-helloworld",
        "tutorial",
        "src/1-helloworld/minimal.bpf.c",
        None,
        lambda r, o, t: _printk_case(
            r,
            o,
            # every write(2) on the host is printed (its pid_filter is a const the compiler
            # folded): 500 writes make sure some of the trigger's survive a busy host's flood
            lambda: spawn(["sh", "-c", "for i in $(seq 500); do echo x; done > /dev/null"]),
            lambda pid: f"BPF triggered sys_enter_write from PID {pid}.",
        ),
    ),
    ("2-kprobe-unlink", "tutorial", "src/2-kprobe-unlink/kprobe-link.bpf.c", None, case_kprobe),
    ("3-fentry-unlink", "tutorial", "src/3-fentry-unlink/fentry-link.bpf.c", None, case_fails),
    ("4-opensnoop", "tutorial", "src/4-opensnoop/opensnoop.bpf.c", None, case_opensnoop),
    (
        "5-uprobe-bashreadline",
        "tutorial",
        "src/5-uprobe-bashreadline/bashreadline.bpf.c",
        None,
        lambda r, o, t: _printk_case(
            r,
            o,
            lambda: trigger_bash_readline("echo pybpf-rw"),
            lambda pid: f"PID {pid} (bash) read: echo pybpf-rw",
        ),
    ),
    ("6-sigsnoop", "tutorial", "src/6-sigsnoop/sigsnoop.bpf.c", None, case_sigsnoop),
    ("7-execsnoop", "tutorial", "src/7-execsnoop/execsnoop.bpf.c", None, case_execsnoop),
    ("8-exitsnoop", "tutorial", "src/8-exitsnoop/exitsnoop.bpf.c", None, case_exitsnoop),
    ("9-runqlat", "tutorial", "src/9-runqlat/runqlat.bpf.c", None, case_runqlat),
    ("11-bootstrap", "tutorial", "src/11-bootstrap/bootstrap.bpf.c", "bootstrap.c", case_bootstrap),
]


def run_case(case: tuple, dirs: dict[str, Optional[Path]], work: Path) -> Result:
    name, project, rel, c_src, check = case
    res = Result(name, project)
    base = dirs[project]
    if base is None or not (base / rel).exists():
        res.status, res.detail = "skipped", f"{project} sources not given (--{project} DIR)"
        return res
    out = work / name
    out.mkdir()
    try:
        obj = build_object(base / rel, out)
        tool = build_tool((base / rel).parent / c_src, obj, out) if c_src else None
    except subprocess.CalledProcessError as e:
        res.status, res.detail = "build failed", first_error(e.stderr.decode(errors="replace"))
        return res
    try:
        check(res, obj, tool)
    except Exception as e:  # a broken case is reported, the others still run
        res.status, res.detail = "error", f"{type(e).__name__}: {e}"
    return res


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", type=Path, help="a libbpf-bootstrap checkout")
    p.add_argument("--tutorial", type=Path, help="a bpf-developer-tutorial checkout")
    p.add_argument("--only", action="append", default=[], help="run only these cases")
    p.add_argument("--show", action="store_true", help="print what pybpf run printed")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (it loads and attaches programs)", file=sys.stderr)
        return 2
    if not VMLINUX.exists():
        print(f"{VMLINUX} is missing: run `make bpf` first", file=sys.stderr)
        return 2
    dirs = {"bootstrap": args.bootstrap, "tutorial": args.tutorial}
    results = []
    with tempfile.TemporaryDirectory(prefix="pybpf-realworld-") as tmp:
        for case in CASES:
            if args.only and case[0] not in args.only:
                continue
            res = run_case(case, dirs, Path(tmp))
            print(f"{res.source}/{res.name}: {res.status} — {res.detail}", file=sys.stderr)
            results.append(res)
    print(f"kernel {os.uname().release}\n")
    print("| program | project | result | what was compared |")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r.name} | {r.source} | {r.status} | {r.detail.replace('|', '/')} |")
    if args.show:
        for r in results:
            if r.pybpf_lines:
                print(f"\n{r.name}:\n" + "\n".join(f"    {ln}" for ln in r.pybpf_lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
