"""What ``pybpf run`` and ``pybpf test-run`` say when the kernel or the command line refuses:
one line naming the thing given and the reason in words, where the kernel's answer alone is a
bare errno (EBUSY, EFAULT, ENOTSUPP, EINVAL) about an fd or an ifindex."""

from __future__ import annotations

import json
import struct
import sys

import pytest

from conftest import ROOT, bpf_object, run
from hosts import make_veth

pytestmark = pytest.mark.system


def pybpf(*args: str):
    return run(sys.executable, "-m", "pybpf", *args, check=False, cwd=ROOT)


def one_error(res) -> str:
    assert res.returncode == 1, (res.stdout[-500:], res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pybpf: error: "), res.stderr
    return lines[0]


@pytest.mark.kmatrix
def test_a_syscall_program_runs_on_its_context(tmp_path) -> None:
    """SEC("syscall"): --data is the context, handed back as the program left it (a + b)."""
    obj = str(bpf_object("tests/syscall_ctx"))
    data = tmp_path / "syscall_ctx.bin"
    data.write_bytes(struct.pack("=IIQ", 2, 40, 0))
    res = pybpf("test-run", obj, "add", "--data", str(data))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "retval 7",
        f"ctx_out 16 bytes: {struct.pack('=IIQ', 2, 40, 42).hex()}",
    ]
    line = one_error(pybpf("test-run", obj, "add", "--data", str(data), "--repeat", "2"))
    assert line.endswith("--repeat: the kernel runs a syscall program once a test run")


def test_a_program_type_the_kernel_cannot_test_run_is_named(tmp_path) -> None:
    data = tmp_path / "zeros64.bin"
    data.write_bytes(bytes(64))
    tp = str(bpf_object("tests/run_execsnoop"))
    line = one_error(pybpf("test-run", tp, "handle_exec", "--data", str(data)))
    assert line.endswith("the kernel has no test run for tracepoint programs"), line
    it = str(bpf_object("tests/run_iter"))
    line = one_error(pybpf("test-run", it, "list_processes", "--data", str(data)))
    assert "the kernel test-runs fentry, fexit and fmod_ret only" in line, line


def test_targets_that_are_not_what_they_should_be() -> None:
    netns = str(bpf_object("tests/attach_netns"))
    line = one_error(pybpf("run", netns, "--netns", "/tmp", "-d", "0.2"))
    assert line == (
        "pybpf: error: /tmp is not a network namespace (give a name of `ip netns` or "
        "/proc/PID/ns/net)"
    )
    uprobe = str(bpf_object("tests/attach_uprobe"))
    line = one_error(pybpf("run", uprobe, "--prog", "up_add", "--attach", "up_add=/tmp:add"))
    assert line.endswith("uprobe target /tmp: a directory, not a program or library"), line
    tp = str(bpf_object("tests/run_execsnoop"))
    line = one_error(pybpf("run", tp, "--attach", "handle_exec=nonsense", "-d", "0.2"))
    assert line.endswith(
        "program 'handle_exec': tracepoint 'nonsense' is not <category>/<name> (sched/sched_switch)"
    ), line


def test_options_that_contradict_each_other() -> None:
    net = str(bpf_object("tests/run_net"))
    line = one_error(pybpf("run", net, "--prog", "tc_udp", "--attach", "sock_udp=lo"))
    assert line.endswith(
        "--attach sock_udp=...: 'sock_udp' is not one of the programs --prog attaches (tc_udp);"
        " add --prog sock_udp"
    ), line
    line = one_error(pybpf("run", net, "--prog", "tc_udp", "--prog", "tc_udp", "-i", "lo"))
    assert line.endswith("--prog: program 'tc_udp' is given twice"), line


@pytest.mark.parametrize("mode, errno_name", [("xdpgeneric", "EEXIST"), ("xdpdrv", "EBUSY")])
def test_an_interface_with_an_xdp_program_is_named_with_that_program(mode, errno_name) -> None:
    pair = make_veth("ce")
    try:
        obj = str(bpf_object("tests/globals"))
        run("ip", "link", "set", "dev", pair.outer, mode, "obj", obj, "sec", "xdp")
        shown = json.loads(run("ip", "-j", "link", "show", "dev", pair.outer).stdout)
        prog_id = shown[0]["xdp"]["prog"]["id"]
        line = one_error(pybpf("run", obj, "-i", pair.outer, "-d", "0.2"))
    finally:
        pair.remove()
    kind = "generic" if mode == "xdpgeneric" else "native"
    assert line == (
        f"pybpf: error: cannot attach XDP to {pair.outer}: {errno_name} "
        f"({'File exists' if errno_name == 'EEXIST' else 'Device or resource busy'}): the "
        f"interface already has an XDP program: id {prog_id} ({kind}); one XDP program per "
        "interface"
    )


def test_a_map_the_object_leaves_to_its_tool_is_sized_with_map() -> None:
    """A stack-trace map without value_size and max_entries (libbpf-tools' profile sets them in
    C before load): bpftool's loadall fails on it as pybpf does; pybpf's line says what is
    missing and how to give it, and --map gives it."""
    obj = str(bpf_object("tests/sized_by_tool"))
    line = one_error(pybpf("load", obj))
    assert line == (
        "pybpf: error: cannot create map 'stacks' (STACK_TRACE): EINVAL (Invalid argument): its "
        "value_size and max_entries are 0 in the object, for the tool's own loader to set "
        "before load; give them with --map stacks.value_size=N --map stacks.max_entries=N "
        "(ObjectSpec.set_map_size in Python)"
    )
    sized = ("--map", "stacks.value_size=1016", "--map", "stacks.max_entries=128")
    res = pybpf("load", obj, *sized)
    assert res.returncode == 0 and res.stdout.startswith("fork_stack: tracepoint id "), res.stderr
    res = pybpf("run", obj, *sized, "-d", "0.3")
    assert res.returncode == 0, res.stderr
    line = one_error(pybpf("load", obj, "--map", "stacks.depth=3"))
    assert line.endswith("--map stacks.depth=3: expected NAME.max_entries=N or NAME.value_size=N")
