"""``pybpf run`` with targets its sections do not name: ``-i IFACE``, ``--attach PROG=TARGET``,
``--exe``, ``--cgroup``, end to end through the CLI.

The objects mirror libbpf-bootstrap's examples: ``run_net.bpf.c`` its tc classifier
(``SEC("tc")``, bpf_printk) and its sockfilter (``SEC("socket")``, a ring buffer, a packet socket
the loader opens); ``run_uprobe.bpf.c`` its uprobe example (bare ``SEC("uprobe")`` programs and
``uprobe//proc/self/exe:...`` ones) on a small C program built here; ``run_iter.bpf.c`` an
iterator, printed once. What they print is compared with what the test did (the datagrams it
sent, with their lengths and TTL; the values the C program computed), and "nothing left" is
asked of the kernel.

Every test runs in the kernel matrix's guests too (6.1 and 6.12). Where a kernel lacks what a
test's object needs, the test checks what a user sees there instead: a tc program goes to a
clsact filter without tcx links (before 6.6), which only the clean-up removes; an object with a
uprobe_multi section (6.6) or a netfilter program (6.4) is refused in one line.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import ROOT, bpf_object, need_tool, run, scaled
from tests.test_run import RunProcess, gone, json_lines, printk_run_ok, trace_pipe_free

pytestmark = [pytest.mark.system, pytest.mark.kmatrix]


@functools.cache
def _kallsyms() -> str:
    with open("/proc/kallsyms") as f:
        return f.read()


def kernel_has(function: str) -> bool:
    """Whether the running kernel has this function (``/proc/kallsyms`` lists it): the code of a
    feature, asked of the kernel itself rather than of its release number or of pybpf's probes,
    which are what these tests check."""
    return re.search(rf" {re.escape(function)}(\t|$)", _kallsyms(), re.M) is not None


def has_tcx() -> bool:
    return kernel_has("tcx_link_attach")  # Linux 6.6


def has_uprobe_multi() -> bool:
    return kernel_has("bpf_uprobe_multi_link_attach")  # Linux 6.6


def has_netfilter_programs() -> bool:
    return kernel_has("bpf_nf_link_attach")  # Linux 6.4


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_udp(port: int, sizes: list[int], ttl: int) -> int:
    """Datagrams of these payload sizes to 127.0.0.1:port; the sender's port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        s.bind(("127.0.0.1", 0))
        for n in sizes:
            s.sendto(b"x" * n, ("127.0.0.1", port))
        return s.getsockname()[1]


def printk_messages(printk: list[str], needle: str) -> list[str]:
    """The messages (after ``bpf_trace_printk: ``) of the trace_pipe lines holding ``needle``."""
    return [ln.split("bpf_trace_printk: ", 1)[1] for ln in printk if needle in ln]


class StreamingRun(RunProcess):
    """A run whose stdout is read as it comes: one that prints more than a pipe holds."""

    def __init__(self, obj: str, *args: str) -> None:
        super().__init__(obj, *args)
        self.out: list[str] = []
        self._reader = threading.Thread(target=self._read_out, daemon=True)
        self._reader.start()

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            self.out.append(line)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> tuple[int, str]:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        self._err_reader.join(timeout=5)  # the stderr thread's last lines
        return self.proc.returncode, "".join(self.out)


def tcx_programs() -> set[int]:
    """Program ids of the tcx links bpftool sees (Debian's bpftool 7.1 names their type 11)."""
    out = run(need_tool("bpftool"), "-j", "link", "show").stdout
    return {lk["prog_id"] for lk in json.loads(out or "[]") if lk.get("type") in ("tcx", 11)}


def clsact_filters(iface: str, hook: str = "ingress") -> dict[int, dict]:
    """The bpf filters ``tc filter show`` lists on a clsact hook of ``iface``: their options
    (``direct-action``, ``prog``...) by program id."""
    out = run(need_tool("tc"), "-j", "filter", "show", "dev", iface, hook).stdout
    return {
        f["options"]["prog"]["id"]: f["options"]
        for f in json.loads(out or "[]")
        if f.get("kind") == "bpf" and "prog" in f.get("options", {})
    }


def has_clsact(iface: str) -> bool:
    out = run(need_tool("tc"), "-j", "qdisc", "show", "dev", iface).stdout
    return any(q.get("kind") == "clsact" for q in json.loads(out or "[]"))


def assert_on_tc_hook(prog_id: int, iface: str) -> None:
    """Where ``pybpf run -i IFACE`` puts a tc program: a tcx link where the kernel has them, else
    a direct-action filter on the interface's clsact qdisc, as ``tc filter show`` lists it."""
    if has_tcx():
        assert prog_id in tcx_programs(), "a tcx link, as bpftool sees it"
        assert prog_id not in clsact_filters(iface)
    else:
        options = clsact_filters(iface).get(prog_id)
        assert options is not None, "a clsact filter, as tc sees it"
        assert options["direct-action"] and options["prog"]["name"] == "tc_udp", options


def run_refused(*args: str) -> list[str]:
    """The lines of a ``pybpf run`` that must fail before attaching: it exits 1, prints nothing.
    (``-d 1``: one that is not refused ends by itself, and the test fails at once.)"""
    res = run(sys.executable, "-m", "pybpf", "run", *args, "-d", "1", check=False, cwd=ROOT,
              timeout=scaled(60))  # fmt: skip
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    return res.stderr.splitlines()


@pytest.fixture
def running() -> Iterator[list[RunProcess]]:
    """The pybpf run processes a test starts, ended if the test fails before stopping them: by
    Ctrl-C, whose clean-up removes a clsact filter that kill -9 would leave on the interface for
    the next tests to find; by kill -9 when that does not end them."""
    procs: list[RunProcess] = []
    yield procs
    for r in procs:
        if r.proc.poll() is None:
            r.proc.send_signal(signal.SIGINT)
            try:
                r.proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()


def wait_until(check, timeout: float = 5.0) -> bool:
    end = time.monotonic() + scaled(timeout)
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()


# --- tc and socket filters on an interface ---------------------------------------------------


def test_tc_section_without_a_hook_runs_on_the_interface_given_and_goes_away(running) -> None:
    """A tcx link, or before 6.6 a clsact filter, which the run removes with the clsact qdisc
    it added: the program counts the same datagrams either way."""
    port = free_udp_port()
    clsact_before = has_clsact("lo")
    trace_pipe_free()
    r = RunProcess(
        str(bpf_object("tests/run_net")), "-i", "lo", "--prog", "tc_udp",
        "--set", f"port={port}", "--json",
    )  # fmt: skip
    running.append(r)
    ids = r.wait_attached()
    assert "tc_udp" in "".join(r.err) and " on lo ingress" in "".join(r.err)
    assert_on_tc_hook(ids[0], "lo")
    sizes = [10, 200, 1000]
    send_udp(port, sizes, ttl=42)
    time.sleep(scaled(0.5))
    rc, out = r.stop()
    assert rc == 0, r.err
    printk_run_ok(r)
    _, printk, maps = json_lines(out)
    # On lo every datagram enters once (ingress): the IP total length is payload + 28.
    assert printk_messages(printk, f"pybpf tc: UDP to {port}:") == [
        f"pybpf tc: UDP to {port}: tot_len: {n + 28}, ttl: 42" for n in sizes
    ]
    assert maps["tc_seen"]["entries"][0]["value"] == len(sizes)
    assert gone(ids) and not set(ids) & tcx_programs()
    assert has_clsact("lo") == clsact_before, "a clsact qdisc the run added is removed with it"


# A pybpf run whose clean-up is hit by Ctrl-C after Ctrl-C: the tc program goes through a clsact
# filter, as on a kernel without tcx (a filter outlives the process, unlike a link); the run is
# ended by a first SIGINT, then one more is raised at every EVERY-th Python call of the clean-up
# (50 at most). Prints the exit code, the filters and clsact left, and the signals raised.
_CTRL_C_AGAIN = """
import os, signal, socket, sys, threading
import pybpf.link.tc as tc
from pybpf.cli import _command
from pybpf.run import Runner

tc.tcx_supported = lambda: False
obj, iface, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = raised = 0

def again(frame, event, arg):
    global calls, raised
    if event in ("call", "c_call"):
        calls += 1
        if calls % every == 0 and raised < 50:
            raised += 1
            signal.raise_signal(signal.SIGINT)

loop, finish = Runner.loop, Runner.finish

def first_ctrl_c(self):
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    loop(self)

def finish_under_fire(self):
    sys.setprofile(again)
    try:
        finish(self)
    finally:
        sys.setprofile(None)

Runner.loop, Runner.finish = first_ctrl_c, finish_under_fire
rc = _command(["run", obj, "-i", iface, "--prog", "tc_udp", "--no-maps"])
index = socket.if_nametoindex(iface)
print("RESULT", rc, len(tc.filters(index, "ingress")), tc.has_clsact(index), raised)
"""


@pytest.mark.parametrize("every", [2, 7, 31, 97])
def test_ctrl_c_pressed_again_during_the_clean_up_cannot_leave_a_tc_filter(every) -> None:
    """The first Ctrl-C ends the run; later ones are ignored until it has detached: the
    clsact filter and the clsact qdisc it added are gone, the exit is clean."""
    veth = f"pybpfcc{os.getpid() % 100000}"
    run("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "p")
    try:
        run("ip", "link", "set", veth, "up")
        trace_pipe_free()
        res = subprocess.run(
            [sys.executable, "-c", _CTRL_C_AGAIN, str(bpf_object("tests/run_net")), veth,
             str(every)],
            cwd=ROOT, capture_output=True, text=True, timeout=scaled(60),
        )  # fmt: skip
        result = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
        assert result, res.stdout + res.stderr
        rc, left, clsact, raised = result[-1].split()[1:]
        assert (rc, left, clsact) == ("0", "0", "False"), res.stderr
        assert int(raised) > 1, "the clean-up was hit by more than one signal"
        assert "Traceback" not in res.stderr
        out = run("tc", "filter", "show", "dev", veth, "ingress").stdout
        assert out.strip() == ""
    finally:
        run("ip", "link", "del", veth, check=False)


def packet_socket_rmem(pid: int) -> list[int]:
    """Rmem of the AF_PACKET sockets process ``pid`` holds (/proc/net/packet by inode)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    rmem = []
    with open("/proc/net/packet") as f:
        header = f.readline().split()
        for line in f:
            fields = dict(zip(header, line.split()))
            if fields.get("Inode") in inodes:
                rmem.append(int(fields["Rmem"]))
    return rmem


def test_a_socket_filter_gets_a_packet_socket_of_the_interface_drained_for_the_run(
    running,
) -> None:
    port = free_udp_port()
    r = StreamingRun(
        str(bpf_object("tests/run_net")), "--attach", "sock_udp=lo",
        "--set", f"port={port}", "--json", "--no-maps",
    )  # fmt: skip
    running.append(r)
    ids = r.wait_attached()
    err = "".join(r.err)
    assert "1 packet socket" in err
    assert "not attached, their sections name no target: tc_udp (-i IFACE)" in err
    assert len(packet_socket_rmem(r.proc.pid)) == 1
    sizes = [5, 50, 500]
    sport = send_udp(port, sizes, ttl=64)
    send_udp(port, [100] * 300, ttl=64)  # more than a socket's queue holds if not read
    time.sleep(scaled(1.0))
    assert packet_socket_rmem(r.proc.pid) == [0], "the socket is read as it fills"
    rc, out = r.stop()
    assert rc == 0, r.err
    events, _, _ = json_lines(out)
    mine = [e["event"] for e in events if e["map"] == "rb"]
    first = [e for e in mine if socket.ntohs(e["src_port"]) == sport]
    lo = socket.inet_aton("127.0.0.1")
    # A packet socket on lo sees each datagram twice: sent (PACKET_OUTGOING) and received.
    assert sorted((e["pkt_type"], e["len"]) for e in first) == sorted(
        (t, 14 + 28 + n) for n in sizes for t in (4, 0)
    )
    for e in first:
        assert e["src_addr"].to_bytes(4, sys.byteorder) == lo
        assert e["dst_addr"].to_bytes(4, sys.byteorder) == lo
        assert socket.ntohs(e["dst_port"]) == port
        assert e["ip_proto"] == socket.IPPROTO_UDP and e["ifindex"] == socket.if_nametoindex("lo")
    assert len(mine) == 2 * (len(sizes) + 300)
    assert gone(ids)


# --- uprobes on a binary of the user's ---------------------------------------------------------


@pytest.fixture(scope="module")
def uprobed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("uprobed") / "uprobed"
    run(need_tool("gcc"), "-O2", "-g", "-o", str(out), str(ROOT / "tests/targets/uprobed.c"))
    return out


def test_uprobes_without_a_target_and_on_proc_self_exe_run_on_the_binary_given(
    uprobed: Path, running
) -> None:
    trace_pipe_free()
    r = RunProcess(
        str(bpf_object("tests/run_uprobe")), "--exe", str(uprobed),
        "--attach", "uprobe_add=uprobed_add", "--attach", f"uretprobe_add={uprobed}:uprobed_add",
        "--json",
    )  # fmt: skip
    running.append(r)
    ids = r.wait_attached()
    assert len(ids) == 4
    p = subprocess.Popen([str(uprobed), "3"], stdout=subprocess.PIPE, text=True)
    stdout, _ = p.communicate(timeout=scaled(30))
    time.sleep(scaled(0.5))
    rc, out = r.stop()
    assert rc == 0, r.err
    printk_run_ok(r)
    _, printk, _ = json_lines(out)
    # the probed process's lines: "uprobed-PID", or "<...>-PID" when the kernel's cache of
    # command names no longer holds it
    mine = [ln for ln in printk if re.search(rf"-{p.pid}\s+\[", ln)]
    seen = printk_messages(mine, "bpf_trace_printk: ")
    want = []
    for i, line in enumerate(stdout.splitlines()):
        total, diff = line.split()
        want += [
            f"uprobed_add ENTRY: a = {i}, b = {i + 1}",
            f"uprobed_add EXIT: return = {total}",
            f"uprobed_sub ENTRY: a = {i * i}, b = {i}",
            f"uprobed_sub EXIT: return = {diff}",
        ]
    # trace_pipe is the host's: a concurrent reader (another pybpf run, a cat) takes lines
    assert seen == want, (r.err, printk)
    assert gone(ids)


def test_uprobe_multi_sections_take_a_glob_of_the_binary_given(uprobed: Path, running) -> None:
    """Before 6.6, which brought uprobe_multi links, the run is refused in one line."""
    pattern = f"{uprobed}:uprobed_*"
    args = (
        str(bpf_object("tests/attach_uprobe_multi")), "--attach", f"uprobed_entry={pattern}",
        "--attach", f"uprobed_exit={pattern}", "--json", "--no-maps",
    )  # fmt: skip
    if not has_uprobe_multi():
        assert run_refused(*args) == [
            f"pybpf: error: cannot attach uprobe.multi {pattern}: EINVAL (Invalid argument): "
            "this kernel has no uprobe_multi links (6.6+)"
        ]
        return
    r = RunProcess(*args)
    running.append(r)
    ids = r.wait_attached()
    p = subprocess.run([str(uprobed), "2"], capture_output=True, text=True, check=True)
    time.sleep(scaled(0.3))
    rc, out = r.stop()
    assert rc == 0, r.err
    events, _, _ = json_lines(out)
    seen = [(e["event"]["a"], e["event"]["b"], e["event"]["ret"]) for e in events]
    want = []
    for i, line in enumerate(p.stdout.splitlines()):
        total, diff = (int(x) for x in line.split())
        want += [(i, i + 1, 0), (0, 0, total), (i * i, i, 0), (0, 0, diff)]
    assert seen == want
    assert gone(ids)


def test_a_proc_self_exe_section_without_exe_is_one_line() -> None:
    res = run(
        sys.executable, "-m", "pybpf", "run", str(bpf_object("tests/run_uprobe")),
        "-d", "1", check=False, cwd=ROOT,
    )  # fmt: skip
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "pybpf: error: program 'uprobe_sub' (section uprobe//proc/self/exe:uprobed_sub) probes "
        "/proc/self/exe, the binary of its own loader (for pybpf run: Python): name that binary "
        "with --exe PATH, or give the target with --attach uprobe_sub=BINARY:..."
    ]


# --- iterators ---------------------------------------------------------------------------------


def iter_lines(text: str) -> dict[int, str]:
    lines = text.splitlines()
    out = {int(ln.split(" ", 1)[0]): ln.split(" ", 1)[1] for ln in lines}
    assert len(out) == len(lines), "one line per process"
    return out


def test_an_iterator_is_read_once_as_cat_of_its_pinned_link_and_the_run_ends() -> None:
    obj = bpf_object("tests/run_iter")
    pin = f"/sys/fs/bpf/pybpf-run-iter-{os.getpid()}"
    before = {int(d) for d in os.listdir("/proc") if d.isdigit()}
    run(need_tool("bpftool"), "iter", "pin", str(obj), pin)
    try:
        theirs = iter_lines(Path(pin).read_text())
    finally:
        os.unlink(pin)
    res = run(
        sys.executable, "-m", "pybpf", "run", str(obj), "--no-maps", cwd=ROOT,
        timeout=scaled(60),
    )  # fmt: skip
    after = {int(d) for d in os.listdir("/proc") if d.isdigit()}
    ours = iter_lines(res.stdout)
    assert ours[os.getpid()] == Path("/proc/self/comm").read_text().strip()
    # the processes alive throughout are listed alike by both reads
    steady = before & after & set(theirs)
    assert len(steady) > 10
    assert {p: ours.get(p) for p in steady} == {p: theirs[p] for p in steady}


# --- bad targets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["tests/run_net", "-i", "pybpf-nosuch0"], "no network interface named 'pybpf-nosuch0'"),
        (["tests/run_net", "--attach", "nosuch=lo"], "--attach nosuch=...: no program named"),
        (["tests/run_net", "--attach", "tc_udp=lo:sideways"], "the hook is ingress or egress"),
        (["tests/run_net", "--attach", "tc_udp"], "--attach tc_udp: expected PROGRAM=TARGET"),
        (["tests/run_net", "--attach", "sock_udp=lo:egress"], "takes an interface alone"),
        (["tests/run_net"], "no program could be attached (tc_udp, sock_udp (-i IFACE))"),
        (
            ["tests/attach_cgroup", "--cgroup", "/sys/fs/cgroup/pybpf-no-such-group"],
            "cgroup /sys/fs/cgroup/pybpf-no-such-group: No such file or directory",
        ),
        (
            ["tests/run_uprobe", "--exe", "/bin/true"],
            "/bin/true has no function 'uprobed_sub' (in .symtab or .dynsym)",
        ),
        (["tests/run_iter", "--attach", "list_processes=x"], "target is fixed at load"),
    ],
)
def test_bad_targets_are_one_line_errors(args: list[str], message: str) -> None:
    obj, *rest = args
    res = run(
        sys.executable, "-m", "pybpf", "run", str(bpf_object(obj)), *rest, "-d", "1",
        check=False, cwd=ROOT,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pybpf: error: "), res.stderr
    assert message in lines[0]


# --- cgroups and network namespaces -------------------------------------------------------------


def test_cgroup_option_places_cgroup_programs_for_the_run(running) -> None:
    from pybpf.link.cgroup import cgroup2_root
    from tests.test_attach_sockaddr import bpftool_cgroup, in_cgroup

    cg = Path(cgroup2_root()) / f"pybpf-rt-{os.getpid()}"
    cg.mkdir()
    bind = """
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", {port})); print("bound")
        except OSError as e:
            print(errno.errorcode[e.errno])
    """
    try:
        port = free_udp_port()
        r = RunProcess(
            str(bpf_object("tests/attach_sockaddr")), "--cgroup", str(cg),
            "--prog", "bind4_deny", "--set", f"deny_port={port}", "--no-maps",
        )  # fmt: skip
        running.append(r)
        ids = r.wait_attached()
        assert f"bind4_deny (prog id {ids[0]}) on {cg}" in "".join(r.err)
        assert bpftool_cgroup(cg) == {(ids[0], "cgroup_inet4_bind")}
        assert in_cgroup(cg, bind.format(port=port)) == "EPERM"
        rc, _ = r.stop()
        assert rc == 0 and gone(ids)
        assert bpftool_cgroup(cg) == set()
        assert in_cgroup(cg, bind.format(port=port)) == "bound"
    finally:
        for _ in range(50):
            try:
                cg.rmdir()
                break
            except OSError:
                time.sleep(0.05)


# attach_netns.bpf.c's netfilter program: before 6.4 the kernel has no such program type, and
# the whole object is refused as it loads (--prog chooses what is attached, not what is loaded).
NO_NETFILTER = (
    "pybpf: error: program 'nf_count' (section netfilter): this kernel has no NETFILTER programs "
    "(no BPF_PROG_TYPE_NETFILTER in its BTF)"
)


def test_netns_option_places_sk_lookup_and_flow_dissector_and_names_what_it_cannot(
    running,
) -> None:
    ns = f"pybpf-rt-{os.getpid()}"
    run("ip", "netns", "add", ns)
    try:
        args = (str(bpf_object("tests/attach_netns")), "--netns", ns, "--no-maps")
        netfilter = has_netfilter_programs()
        if not netfilter:
            assert run_refused(*args) == [NO_NETFILTER]
            # the namespace's own hooks are there all the same: the object without nf_count
            args = (str(bpf_object("tests/attach_netns_nonf")), "--netns", ns, "--no-maps")
        r = RunProcess(*args)
        running.append(r)
        ids = r.wait_attached()
        err = "".join(r.err)
        if netfilter:
            assert (
                "not attached, their sections name no target: nf_count "
                "(--attach PROG=FAMILY:HOOK:PRIORITY)" in err
            )
        else:
            assert "nf_count" not in err  # not in the object: not named at all
        assert f"steer (prog id {ids[0]}) on {ns}, dissect (prog id {ids[1]}) on {ns}" in err
        # (Debian's bpftool 7.1 writes flow_dissector's JSON malformed: its text is read)
        out = run("ip", "netns", "exec", ns, need_tool("bpftool"), "net").stdout
        assert re.findall(r"flow_dissector:\s*id (\d+)", out) == [str(ids[1])]
        rc, _ = r.stop()
        assert rc == 0 and gone(ids)
    finally:
        run("ip", "netns", "del", ns, check=False)


def test_a_netfilter_program_goes_to_the_hook_given_in_the_netns_given(running) -> None:
    ns = f"pybpf-rtnf-{os.getpid()}"
    run("ip", "netns", "add", ns)
    try:
        run("ip", "-n", ns, "link", "set", "lo", "up")
        args = (
            str(bpf_object("tests/attach_netns")), "--netns", ns, "--prog", "nf_count",
            "--attach", "nf_count=ipv4:local_in:-100", "--json",
        )  # fmt: skip
        if not has_netfilter_programs():
            assert run_refused(*args) == [NO_NETFILTER]
            return
        r = RunProcess(*args)
        running.append(r)
        ids = r.wait_attached()
        send = (
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('127.0.0.1', 0)); [s.sendto(b'!', s.getsockname()) for _ in range(3)]"
        )
        run("ip", "netns", "exec", ns, sys.executable, "-c", send)
        rc, out = r.stop()
        assert rc == 0, r.err
        _, _, maps = json_lines(out)
        counts = {e["key"]: e["value"] for e in maps["ns_counts"]["entries"]}
        assert counts[2] == 3, "the three datagrams through the namespace's LOCAL_IN"
        assert gone(ids)
    finally:
        run("ip", "netns", "del", ns, check=False)


# --- trace_pipe taken -------------------------------------------------------------------------


def test_a_trace_pipe_another_process_reads_leaves_printk_out_in_one_note() -> None:
    """The kernel lets one process read trace_pipe (EBUSY for the next): the run goes on
    without bpf_printk lines and says so once attached; a failing run still says one line."""
    from pybpf.run import TRACEFS, mount_tracefs, tracefs_mounted

    if not tracefs_mounted():
        mount_tracefs()
    try:
        held = os.open(f"{TRACEFS}/trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        pytest.fail(f"trace_pipe is taken already ({e.strerror}): run this test alone")
    try:
        obj = str(bpf_object("tests/run_net"))
        ok = run(sys.executable, "-m", "pybpf", "run", obj, "-i", "lo", "--prog", "tc_udp",
                 "-d", "0.5", "--no-maps", cwd=ROOT)  # fmt: skip
        notes = ok.stderr.splitlines()
        assert notes[0].startswith("pybpf: attached tc_udp")
        assert notes[1] == (
            "pybpf: bpf_printk output not shown: /sys/kernel/tracing/trace_pipe: another "
            "process is reading it"
        )
        bad = run(sys.executable, "-m", "pybpf", "run", obj, "-d", "1", check=False, cwd=ROOT)
        assert bad.returncode == 1 and bad.stderr.splitlines() == [
            "pybpf: error: run_net: no program could be attached (tc_udp, sock_udp (-i IFACE))"
        ]
    finally:
        os.close(held)


def test_maps_in_bpftools_layout() -> None:
    """--map-format bpftool: each map under its name, as ``bpftool map dump`` prints it
    (tests/test_btf_dump.py compares that text with bpftool's byte for byte)."""
    res = run(
        sys.executable, "-m", "pybpf", "run", str(bpf_object("tests/run_net")), "-i", "lo",
        "--prog", "tc_udp", "-d", "0.3", "--map-format", "bpftool", cwd=ROOT,
    )  # fmt: skip
    want = 'map tc_seen (array):\n[{\n        "key": 0,\n        "value": 0\n    }\n]\n'
    assert res.stdout == want


# --- nothing left, however the run ends ------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_xdp_tc_and_socket_filter_on_an_interface_are_gone_after_the_run(running, sig) -> None:
    """XDP and tcx are links, the socket filter's socket is the process's: a run ended by
    Ctrl-C or by kill -9 leaves nothing on the interface (a veth made for the test). Before 6.6
    the tc program is a clsact filter, which belongs to the interface: Ctrl-C's clean-up removes
    it and its qdisc, kill -9 leaves both until the interface goes."""
    veth = f"pybpfrt{os.getpid() % 100000}"
    run("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "p")
    try:
        run("ip", "link", "set", veth, "up")
        a = RunProcess(str(bpf_object("tests/run_net")), "-i", veth, "--no-maps")
        b = RunProcess(str(bpf_object("tests/xdp_empty")), "-i", veth, "--no-maps")
        running.extend([a, b])
        ids = a.wait_attached() + b.wait_attached()  # tc_udp, sock_udp, the XDP program
        link = json.loads(run("ip", "-j", "-d", "link", "show", veth).stdout)[0]
        assert link["xdp"]["prog"]["id"] == ids[2]
        assert_on_tc_hook(ids[0], veth)
        for r in (a, b):
            r.proc.send_signal(sig)
            r.proc.wait(timeout=scaled(20))
        assert gone(ids[1:]), "the socket filter's program and the XDP one"
        link = json.loads(run("ip", "-j", "-d", "link", "show", veth).stdout)[0]
        assert "xdp" not in link
        if sig == signal.SIGKILL and not has_tcx():
            # no clean-up ran: the filter keeps its program until the interface goes
            assert list(clsact_filters(veth)) == [ids[0]] and has_clsact(veth)
            run("ip", "link", "del", veth)
        else:
            assert not has_clsact(veth)
        assert gone(ids[:1]) and not set(ids) & tcx_programs()
    finally:
        run("ip", "link", "del", veth, check=False)
