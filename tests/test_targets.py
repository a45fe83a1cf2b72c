"""``pybpf run``'s targets read per kind (pybpf/targets.py): no kernel needed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pybpf.errors import BPFError
from pybpf.targets import Targets, attach_options, hint, target_options


def obj_with(**sections: str) -> SimpleNamespace:
    progs = {n: SimpleNamespace(name=n, section=s) for n, s in sections.items()}
    sockmap = SimpleNamespace(name="socks", type=SimpleNamespace(name="SOCKMAP"))
    return SimpleNamespace(programs=progs, maps={"socks": sockmap})


@pytest.mark.parametrize(
    "section, target, options",
    [
        ("xdp", "eth0", {"interface": "eth0"}),
        ("tc", "lo", {"interface": "lo", "direction": "ingress"}),
        ("tc", "lo:egress", {"interface": "lo", "direction": "egress"}),
        ("tc/egress", "lo", {"interface": "lo", "direction": "egress"}),
        ("socket", "lo", {"interface": "lo"}),
        ("cgroup/connect6", "/sys/fs/cgroup/x", {"cgroup": "/sys/fs/cgroup/x"}),
        ("sk_lookup", "ns1", {"netns": "ns1"}),
        ("perf_event", "freq=99", {"sample_freq": 99}),
        ("perf_event", "period=1000", {"sample_period": 1000}),
        ("netfilter", "ipv6:post_routing:5", {"pf": 10, "hook": 4, "priority": 5}),
        ("netfilter", "ipv4:localin:-100", {"pf": 2, "hook": 1, "priority": -100}),
        ("uprobe", "/bin/bash:readline", {"target": "/bin/bash:readline"}),
        ("tp/sched/sched_switch", "sched/sched_wakeup", {"target": "sched/sched_wakeup"}),
    ],
)
def test_a_target_is_read_by_the_programs_kind(section: str, target: str, options: dict) -> None:
    assert target_options("p", section, target) == options


def test_a_sockmap_target_is_a_map_of_the_object() -> None:
    obj = obj_with(verdict="sk_msg")
    assert target_options("verdict", "sk_msg", "socks", obj) == {"map": obj.maps["socks"]}
    with pytest.raises(BPFError, match=r"no map named 'nope' \(sockmaps: socks\)"):
        target_options("verdict", "sk_msg", "nope", obj)


def test_exe_stands_for_proc_self_exe_and_completes_a_bare_function() -> None:
    obj = obj_with(add="uprobe", sub="uprobe//proc/self/exe:uprobed_sub", iter="iter/task")
    targets = Targets((("add", "uprobed_add"),), exe="/opt/uprobe")
    assert attach_options(obj, targets) == {
        "add": {"target": "/opt/uprobe:uprobed_add"},
        "sub": {"target": "/opt/uprobe:uprobed_sub"},
    }
    with pytest.raises(BPFError, match=r"probes /proc/self/exe.*--exe PATH"):
        attach_options(obj, Targets())


def test_short_forms_reach_every_program_of_their_kind() -> None:
    obj = obj_with(a="xdp", b="tc", c="cgroup/bind4", d="flow_dissector", e="tp/a/b")
    opts = attach_options(obj, Targets(interface="lo", cgroup="/cg", netns="/run/netns/x"))
    assert opts == {
        "a": {"interface": "lo"},
        "b": {"interface": "lo", "direction": "ingress"},
        "c": {"cgroup": "/cg"},
        "d": {"netns": "/run/netns/x"},
    }


@pytest.mark.parametrize(
    "items, message",
    [
        (["p"], "expected PROGRAM=TARGET"),
        (["p=a", "p=b"], "program 'p' is given twice"),
    ],
)
def test_malformed_attach_options(items: list[str], message: str) -> None:
    with pytest.raises(BPFError, match=message):
        Targets.parse_attach(items)


@pytest.mark.parametrize(
    "section, target, message",
    [
        ("tc", "lo:up", "the hook is ingress or egress"),
        ("xdp", "lo:ingress", "takes an interface alone"),
        ("perf_event", "fast", "expected freq=HZ or period=N"),
        ("iter/task", "x", "fixed at load"),
        ("netfilter", "ipv4:sideways:1", "expected FAMILY:HOOK:PRIORITY"),
        ("uprobe", "readline", r"expected BINARY:FUNCTION \(or --exe BINARY\)"),
        ("usdt", "prov:name", r"expected BINARY:PROVIDER:NAME"),
    ],
)
def test_bad_targets_say_what_was_expected(section: str, target: str, message: str) -> None:
    with pytest.raises(BPFError, match=message):
        target_options("p", section, target)


def test_each_kind_left_out_names_the_option_that_attaches_it() -> None:
    assert hint("xdp") == "-i IFACE"
    assert hint("cgroup/sendmsg6") == "--cgroup PATH"
    assert hint("sk_lookup") == "--netns PATH"
    assert hint("uprobe") == "--attach PROG=BINARY:FUNCTION"
    assert hint("perf_event") == "--attach PROG=freq=HZ"
