"""Loading for real: maps and programs in the running kernel, checked against the kernel's own
answers and against what libbpf (through bpftool) loads from the same object."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from pybpf import BPFError, ObjectSpec, VerifierError, load

from conftest import ROOT, bpf_object, need_tool

pytestmark = [pytest.mark.system, pytest.mark.kmatrix]

XDP_DROP, XDP_PASS = 1, 2
FRAME = bytes(64)
CORPUS = [
    "tests/globals",
    "tests/subprog",
    "tests/maps_all",
    "tests/tailcall",
    "tests/btf_maps",
    "tests/btf_types",
    "tests/btf_kconfig",  # .kconfig externs: LINUX_KERNEL_VERSION, CONFIG_*
    "tests/run_uapi",  # built on <linux/*.h> rather than vmlinux.h
    # CO-RE against local preserve_access_index structs, against vmlinux.h, and many
    *(
        pytest.param(n, marks=pytest.mark.kernel_btf)
        for n in ("tests/core_local", "tests/core_vmlinux", "tests/core_many")
    ),
    "xdptcp",
]
XDP_TOOLS = sorted(glob.glob("/usr/lib/*/bpf/*.o"))


def bpftool_tags(obj_path: str) -> dict[str, str]:
    """Load with libbpf (bpftool prog loadall) and return {program name: tag}."""
    need_tool("bpftool")
    pin = f"/sys/fs/bpf/pybpf-ref-{uuid.uuid4().hex[:8]}"
    try:
        res = subprocess.run(
            ["bpftool", "prog", "loadall", obj_path, pin], capture_output=True, text=True
        )
        if res.returncode != 0:
            return {}
        tags = {}
        for entry in os.listdir(pin):
            info = json.loads(
                subprocess.check_output(
                    ["bpftool", "-j", "prog", "show", "pinned", f"{pin}/{entry}"]
                )
            )
            tags[info["name"]] = info["tag"]
        return tags
    finally:
        shutil.rmtree(pin, ignore_errors=True)


def kernel_name(name: str) -> str:
    return name[:15]


@pytest.mark.parametrize("name", CORPUS)
def test_corpus_object_loads_with_the_same_tags_as_libbpf(name):
    path = str(bpf_object(name))
    expected = bpftool_tags(path)
    assert expected, f"bpftool could not load {path}"
    with load(ObjectSpec.from_file(path)) as obj:
        got = {kernel_name(n): p.tag for n, p in obj.programs.items()}
    assert got == expected


@pytest.mark.parametrize("path", XDP_TOOLS or ["(xdp-tools not installed)"])
def test_xdp_tools_objects_load_like_libbpf(path):
    if path.startswith("("):
        from conftest import cannot_run

        cannot_run("xdp-tools is not installed")
    expected = bpftool_tags(path)
    if not expected:
        # libbpf cannot load it on its own (e.g. fentry/func needs a target program):
        # neither can we, and `pybpf load` says why in one line.
        res = subprocess.run(
            [sys.executable, "-m", "pybpf", "load", path], capture_output=True, text=True
        )
        assert "Traceback" not in res.stderr
        assert res.returncode == 1
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        return
    # Loaded in this process: under emulation (the kernel matrix) a Python start per object
    # costs seconds; `pybpf load`'s own lines are checked by the --pin test below.
    with load(ObjectSpec.from_file(path)) as obj:
        got = {kernel_name(n): p.tag for n, p in obj.programs.items()}
    assert got == expected


def test_rodata_configures_the_program_and_globals_are_read_back():
    spec = ObjectSpec.from_file(str(bpf_object("tests/globals")))
    spec.rodata["cfg_verdict"] = XDP_DROP
    spec.rodata["cfg_name"] = "abc"
    with load(spec) as obj:
        res = obj.programs["xdp_globals"].test_run(FRAME, repeat=3)
        assert res.retval == XDP_DROP
        bss = obj.maps["globals.bss"].lookup(b"\0\0\0\0")
        data = obj.maps["globals.data"].lookup(b"\0\0\0\0")
        stats = obj.maps[".data.stats"].lookup(b"\0\0\0\0")

    def var(name, raw):
        v = spec.variables[name]
        return int.from_bytes(raw[v.offset : v.offset + v.size], sys.byteorder)

    assert var("runs", bss) == 3
    assert var("last_len", data) == len(FRAME)
    assert var("seen_magic", stats) == 1
    assert var("name_sum", stats) == sum(b"abc")


def test_rodata_is_frozen_after_load():
    spec = ObjectSpec.from_file(str(bpf_object("tests/globals")))
    with load(spec) as obj:
        ro = obj.maps["globals.rodata"]
        with pytest.raises(BPFError, match="EPERM"):
            ro.update(b"\0\0\0\0", bytes(ro.value_size))


def test_subprograms_compute_what_the_source_says():
    spec = ObjectSpec.from_file(str(bpf_object("tests/subprog")))
    with load(spec) as obj:
        assert obj.programs["xdp_calls"].test_run(FRAME).retval == XDP_PASS
        assert obj.programs["xdp_calls_too"].test_run(FRAME).retval == XDP_PASS
        results = obj.maps["results"]
        got = [
            int.from_bytes(results.lookup(i.to_bytes(4, sys.byteorder)), sys.byteorder)
            for i in range(4)
        ]
    n = len(FRAME)
    assert got == [n * 3 + 1 + 10, n ^ 0xFF, n + 100, sum(range(10))]


def test_prog_array_initialiser_makes_the_tail_call_work():
    with load(ObjectSpec.from_file(str(bpf_object("tests/tailcall")))) as obj:
        assert obj.programs["xdp_entry"].test_run(FRAME).retval == XDP_DROP


def test_every_map_type_is_created_as_declared():
    with load(ObjectSpec.from_file(str(bpf_object("tests/maps_all")))) as obj:
        shown = {}
        for name, m in obj.maps.items():
            info = json.loads(
                subprocess.check_output(["bpftool", "-j", "map", "show", "id", str(m.id)])
            )
            shown[name] = info["type"]
        assert obj.programs["xdp_maps"].test_run(FRAME).retval == XDP_PASS
        inner_a = obj.maps["m_inner_a"].lookup(b"\0\0\0\0")
    assert shown["m_array"] == "array"
    assert shown["m_percpu_hash"] == "percpu_hash"
    assert shown["m_lru_hash"] == "lru_hash"
    assert shown["m_ringbuf"] == "ringbuf"
    assert shown["m_perf"] == "perf_event_array"
    assert shown["m_progs"] == "prog_array"
    assert shown["m_array_of_maps"] == "array_of_maps"
    assert shown["m_hash_of_maps"] == "hash_of_maps"
    # slot 0 of the array of maps is m_inner_a: the program wrote 42 through it
    assert int.from_bytes(inner_a, sys.byteorder) == 42


def test_verifier_rejection_names_program_and_reason():
    spec = ObjectSpec.from_file(str(bpf_object("tests/verifier_reject")))
    with pytest.raises(VerifierError) as info:
        load(spec)
    err = info.value
    assert "xdp_unchecked" in str(err) and "section xdp" in str(err)
    assert "outside of the packet" in str(err)  # the kernel's own words
    assert err.insn is not None and f"at insn {err.insn}:" in str(err)
    assert f"{err.insn}: (" in err.log  # the whole log is kept
    res = subprocess.run(
        [sys.executable, "-m", "pybpf", "load", str(bpf_object("tests/verifier_reject"))],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert res.stderr.startswith("pybpf: error: cannot load program 'xdp_unchecked'")
    assert len(res.stderr.strip().splitlines()) == 1


def test_cli_load_prints_id_and_tag_and_pins(tmp_path):
    pin = f"/sys/fs/bpf/pybpf-test-{uuid.uuid4().hex[:8]}"
    path = str(bpf_object("tests/subprog"))
    try:
        res = subprocess.run(
            [sys.executable, "-m", "pybpf", "load", path, "--pin", pin],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr
        assert sorted(os.listdir(pin)) == ["xdp_calls", "xdp_calls_too"]
        info = json.loads(
            subprocess.check_output(["bpftool", "-j", "prog", "show", "pinned", f"{pin}/xdp_calls"])
        )
        assert f"tag {info['tag']}" in res.stdout
        assert f"id {info['id']}" in res.stdout
    finally:
        shutil.rmtree(pin, ignore_errors=True)


def _map_names() -> list[str]:
    return [
        m.get("name", "") for m in json.loads(subprocess.check_output(["bpftool", "-j", "map"]))
    ]


def test_a_failed_load_leaves_no_maps_behind():
    with pytest.raises(VerifierError):
        load(ObjectSpec.from_file(str(bpf_object("tests/verifier_reject"))))
    names = _map_names()
    assert "seen" not in names and "verifier.bss" not in names


def _prog_names() -> list[str]:
    return [
        p.get("name", "") for p in json.loads(subprocess.check_output(["bpftool", "-j", "prog"]))
    ]


def test_programs_load_side_by_side_yet_fail_and_log_in_the_objects_order():
    """Programs are verified side by side (pybpf.loader._load_programs); what a user sees is the
    one-after-the-other load: the rejected program's error, its predecessors' log lines
    before it, nothing of its successor, and no program of the object left in the kernel."""
    spec = ObjectSpec.from_file(str(bpf_object("tests/load_order")))
    assert list(spec.programs) == ["lo_first", "lo_rejected", "lo_last"]
    lines: list[str] = []
    with pytest.raises(VerifierError) as info:
        load(spec, log=lines.append)
    assert "cannot load program 'lo_rejected'" in str(info.value)
    steps = [" ".join(line.split()[:3]) for line in lines if line.startswith("program ")]
    assert steps == [
        "program 'lo_first': linked",
        "program 'lo_first': loaded",
        "program 'lo_rejected': linked",
    ]
    assert not {"lo_first", "lo_rejected", "lo_last"} & set(_prog_names())
    # the two good ones alone load, logged one after the other, each with the tag libbpf gives
    lines.clear()
    with load(spec, programs=["lo_first", "lo_last"], log=lines.append) as obj:
        steps = [" ".join(line.split()[:3]) for line in lines if line.startswith("program ")]
        assert steps == [
            "program 'lo_first': linked",
            "program 'lo_first': loaded",
            "program 'lo_last': linked",
            "program 'lo_last': loaded",
        ]
        assert list(obj.programs) == ["lo_first", "lo_last"]
        got = {name: p.info().name for name, p in obj.programs.items()}
        assert got == {"lo_first": "lo_first", "lo_last": "lo_last"}
        assert obj.programs["lo_first"].test_run(FRAME).retval == XDP_PASS
        assert obj.programs["lo_last"].test_run(FRAME).retval == XDP_DROP
    assert not {"lo_first", "lo_last"} & set(_prog_names())


def test_maps_first_then_programs_from_two_threads_load_as_libbpf_loads_them():
    """``load(spec, programs=[])`` makes the maps; ``load_program`` then loads each program
    into that object, from as many threads as the caller likes (xdptcp attaches one program
    while the kernel verifies the other)."""
    import threading

    path = str(ROOT / "xdptcp" / "data" / "xdptcp.bpf.o")
    expected = bpftool_tags(path)
    spec = ObjectSpec.from_file(path)
    with load(spec, programs=[]) as obj:
        assert obj.programs == {} and set(obj.maps) == set(spec.maps)
        errors: list[BaseException] = []

        def one(name: str) -> None:
            try:
                obj.load_program(name)
            except BaseException as e:  # handed to the test's thread
                errors.append(e)

        threads = [threading.Thread(target=one, args=(n,)) for n in spec.programs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        got = {kernel_name(n): p.tag for n, p in obj.programs.items()}
        assert got == expected
        ring = obj.maps["xdptcp_ring"].id
        for prog in obj.programs.values():  # the object's own maps, not new ones
            assert ring in prog.info().map_ids
        with pytest.raises(BPFError, match="loaded already"):
            obj.load_program("xdp_capture")
        with pytest.raises(BPFError, match="no program named 'nope'"):
            obj.load_program("nope")


def test_a_map_given_to_load_is_the_one_the_programs_use_and_stays_the_callers():
    """``load(spec, maps={name: Map})``, as libbpf's bpf_map__reuse_fd: the object's map of that
    name is the given one (the kernel's map id), the programs refer to it, and the caller's fd
    outlives the object."""
    from pybpf.maps import Map
    from pybpf.sys.uapi import MapType

    path = str(ROOT / "xdptcp" / "data" / "xdptcp.bpf.o")
    spec = ObjectSpec.from_file(path)
    size = spec.maps["xdptcp_ring"].max_entries
    with Map.create(MapType.RINGBUF, 0, 0, size, name="xdptcp_ring") as ring:
        with load(spec, maps={"xdptcp_ring": ring}) as obj:
            assert obj.maps["xdptcp_ring"].id == ring.id
            assert obj.maps["xdptcp_ring"].fd != ring.fd
            for prog in obj.programs.values():
                assert ring.id in prog.info().map_ids
        assert Map.from_id(ring.id).close() is None  # still alive: the caller holds it


def test_a_map_given_to_load_of_another_shape_or_name_is_refused():
    from pybpf.maps import Map
    from pybpf.sys.uapi import MapType

    spec = ObjectSpec.from_file(str(ROOT / "xdptcp" / "data" / "xdptcp.bpf.o"))
    size = spec.maps["xdptcp_ring"].max_entries
    with Map.create(MapType.RINGBUF, 0, 0, size * 2, name="xdptcp_ring") as bigger:
        with pytest.raises(BPFError, match="map 'xdptcp_ring': the map given for it does not"):
            load(spec, programs=[], maps={"xdptcp_ring": bigger})
        with pytest.raises(BPFError, match="no map named 'nope'"):
            load(spec, programs=[], maps={"nope": bigger})
        assert Map.from_id(bigger.id).close() is None  # the caller's map is left alone


def test_a_program_handed_to_the_verifier_in_a_thread_is_the_objects_or_closed_with_it():
    spec = ObjectSpec.from_file(str(bpf_object("tests/load_order")))
    with load(spec, programs=[]) as obj:
        pending = obj.load_program("lo_first", wait=False)
        with pytest.raises(BPFError, match="loaded already"):
            obj.load_program("lo_first")
        prog = pending.result()
        assert obj.programs == {"lo_first": prog} and obj.pending == []
        assert prog.test_run(FRAME).retval == XDP_PASS
        rejected = obj.load_program("lo_rejected", wait=False)
        with pytest.raises(VerifierError, match="lo_rejected"):
            rejected.result()
        obj.load_program("lo_last", wait=False)  # never asked for: close() takes care of it
    assert obj.pending == [] and obj.programs == {}
    assert not {"lo_first", "lo_last"} & set(_prog_names())


def test_a_program_that_fails_to_load_later_leaves_the_object_as_it_was():
    spec = ObjectSpec.from_file(str(bpf_object("tests/load_order")))
    with load(spec, programs=["lo_first"]) as obj:
        with pytest.raises(VerifierError, match="lo_rejected"):
            obj.load_program("lo_rejected")
        assert list(obj.programs) == ["lo_first"]
        assert obj.load_program("lo_last").test_run(FRAME).retval == XDP_DROP
        assert list(obj.programs) == ["lo_first", "lo_last"]


def test_kfunc_with_an_incompatible_prototype_is_refused_like_libbpf():
    """btf_externs declares bpf_task_acquire on a forward-declared struct: libbpf refuses the
    kfunc (its prototype is not CO-RE compatible with the kernel's) and so do we, naming it."""
    path = str(bpf_object("tests/btf_externs"))
    assert bpftool_tags(path) == {}  # libbpf cannot load it either
    res = subprocess.run(
        [sys.executable, "-m", "pybpf", "load", path], capture_output=True, text=True
    )
    assert res.returncode == 1
    # Before 6.2 the kernel has no bpf_task_acquire at all: refused as missing, still by name.
    assert "extern 'bpf_task_acquire' (kfunc)" in res.stderr or (
        "extern 'bpf_task_acquire'" in res.stderr and "has no function" in res.stderr
    )
    assert len(res.stderr.strip().splitlines()) == 1


def test_maps_pinned_by_name_are_shared_between_loads():
    """``__uint(pinning, LIBBPF_PIN_BY_NAME)``: the first load pins the map at
    /sys/fs/bpf/<name>, the next load of the object reuses it, as libbpf does."""
    path = str(bpf_object("tests/btf_maps"))
    assert not os.path.exists("/sys/fs/bpf/pinned_lru")
    with load(ObjectSpec.from_file(path)) as first:
        first_id = first.maps["pinned_lru"].id
        first.maps["pinned_lru"].update(
            (7).to_bytes(8, sys.byteorder), (9).to_bytes(4, sys.byteorder)
        )
    assert os.path.exists("/sys/fs/bpf/pinned_lru")  # it outlives the load
    with load(ObjectSpec.from_file(path)) as second:
        assert second.maps["pinned_lru"].id == first_id
        value = second.maps["pinned_lru"].lookup((7).to_bytes(8, sys.byteorder))
        assert int.from_bytes(value, sys.byteorder) == 9


def test_a_pinned_map_of_another_shape_is_refused():
    spec = ObjectSpec.from_file(str(bpf_object("tests/btf_maps")))
    from pybpf.maps import Map

    with Map.create(9, 8, 8, 64, name="pinned_lru") as other:  # value 8 bytes, not 4
        other.pin("/sys/fs/bpf/pinned_lru")
    with pytest.raises(BPFError, match="does not match the object's definition"):
        load(spec)


def test_cli_test_run_prints_the_programs_verdict(tmp_path):
    data = tmp_path / "frame.bin"
    data.write_bytes(FRAME)
    path = str(bpf_object("tests/tailcall"))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pybpf",
            "test-run",
            path,
            "xdp_entry",
            "--data",
            str(data),
            "--repeat",
            "5",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == f"retval {XDP_DROP}"  # through the tail call
    assert "duration" in res.stdout
    res = subprocess.run(
        [sys.executable, "-m", "pybpf", "test-run", path, "nope", "--data", str(data)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert res.stderr.strip() == "pybpf: error: tailcall: no program named 'nope'"
    for repeat in ("0", str(1 << 32)):  # bpf_attr.test.repeat is a u32
        res = subprocess.run(
            [sys.executable, "-m", "pybpf", "test-run", path, "xdp_entry", "--data", str(data)]
            + ["--repeat", repeat],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 1
        assert res.stderr.strip() == (
            f"pybpf: error: --repeat must be from 1 to 4294967295 (got {repeat})"
        )
    # argparse's own mistakes are one line too (argparse prints the usage block first)
    for args, line in (
        (
            ["test-run", path, "xdp_entry", "--data", str(data), "--repeat", "abc"],
            "pybpf test-run: error: argument --repeat: invalid int value: 'abc' "
            "(see pybpf test-run --help)",
        ),
        (["test-run", path], "pybpf test-run: error: the following arguments are required: "
         "program, --data (see pybpf test-run --help)"),
        (["nosuch"], "pybpf: error: argument COMMAND: invalid choice: 'nosuch' "),
    ):  # fmt: skip
        res = subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True, text=True)
        assert res.returncode == 2
        assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith(line), res.stderr


def _pinned_prog_id(path: str) -> int:
    out = subprocess.check_output(["bpftool", "-j", "prog", "show", "pinned", path])
    return json.loads(out)["id"]


def test_cli_load_pins_every_program_or_none():
    """A load whose programs cannot all be pinned (one's name is taken in the directory) fails
    naming that path, prints no program as loaded, and leaves the directory as it was: what it
    pinned is unpinned, the earlier pin kept. bpftool prog loadall does the same (libbpf's
    bpf_object__pin_programs unpins what it pinned when one pin fails)."""
    need_tool("bpftool")
    pin = f"/sys/fs/bpf/pybpf-test-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "pybpf", "load", str(bpf_object("tests/subprog")), "--pin", pin]
    try:
        subprocess.run(cmd, check=True, capture_output=True)
        earlier = _pinned_prog_id(f"{pin}/xdp_calls_too")
        os.unlink(f"{pin}/xdp_calls")
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 1
        assert res.stdout == ""
        assert res.stderr == (
            f"pybpf: error: cannot pin program 'xdp_calls_too' at {pin}/xdp_calls_too: "
            "EEXIST (File exists): the path exists already\n"
        )
        assert os.listdir(pin) == ["xdp_calls_too"]
        assert _pinned_prog_id(f"{pin}/xdp_calls_too") == earlier
    finally:
        shutil.rmtree(pin, ignore_errors=True)


def test_cli_load_pin_outside_bpffs_creates_nothing(tmp_path):
    target = tmp_path / "pins" / "here"
    path = str(bpf_object("tests/subprog"))
    res = subprocess.run(
        [sys.executable, "-m", "pybpf", "load", path, "--pin", str(target)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr.startswith(
        f"pybpf: error: cannot pin under {target}: EINVAL (Invalid argument): "
        f"not on a bpffs mount ({tmp_path} is on "
    )
    assert len(res.stderr.splitlines()) == 1
    assert os.listdir(tmp_path) == []


@pytest.fixture
def pin_root():
    """A directory for maps pinned by name, which no other test uses."""
    root = f"/sys/fs/bpf/pybpf-test-{uuid.uuid4().hex[:8]}"
    yield root
    shutil.rmtree(root, ignore_errors=True)


PIN_BY_NAME = ["pin_config", "pin_events", "pin_seen"]


def _pinned_map_ids(root: str) -> dict[str, int]:
    from pybpf.maps import Map

    ids = {}
    for name in sorted(os.listdir(root)):
        with Map.from_pinned(f"{root}/{name}") as m:
            ids[name] = m.id
    return ids


def test_maps_pinned_by_name_are_reused_as_the_loader_made_them(pin_root):
    """What libbpf compares before reusing a pinned map: a perf event array sized by the loader
    (the source says no size), an array created BPF_F_RDONLY_PROG, a bloom filter's hash count
    (map_extra) are all the object's definition."""
    spec = ObjectSpec.from_file(str(bpf_object("tests/pin_by_name")))
    with load(spec, programs=["pin_ok"], pin_root=pin_root) as first:
        ids = {name: m.id for name, m in first.maps.items()}
    assert _pinned_map_ids(pin_root) == ids and sorted(ids) == PIN_BY_NAME
    with load(spec, programs=["pin_ok"], pin_root=pin_root) as second:
        assert {name: m.id for name, m in second.maps.items()} == ids


def test_a_pinned_map_with_another_map_extra_is_refused(pin_root):
    from pybpf.maps import Map
    from pybpf.sys.uapi import MapType

    spec = ObjectSpec.from_file(str(bpf_object("tests/pin_by_name")))
    with Map.create(MapType.BLOOM_FILTER, 0, 4, 64, name="pin_seen", map_extra=5) as other:
        other.pin(f"{pin_root}/pin_seen")
    with pytest.raises(BPFError, match="map 'pin_seen': the map pinned at .* does not match"):
        load(spec, programs=["pin_ok"], pin_root=pin_root)
    assert os.listdir(pin_root) == ["pin_seen"]  # the pin that was there, and only it


def test_a_failed_load_unpins_the_maps_it_pinned_and_only_those(pin_root):
    """As libbpf's bpf_object__load: maps a failed load pinned by name are unpinned again (and
    the directory it made for them removed); maps it found pinned and shared stay pinned."""
    spec = ObjectSpec.from_file(str(bpf_object("tests/pin_by_name")))
    with pytest.raises(VerifierError, match="pin_rejected"):
        load(spec, pin_root=pin_root)
    assert not os.path.exists(pin_root)
    with load(spec, programs=["pin_ok"], pin_root=pin_root):
        ids = _pinned_map_ids(pin_root)
    os.unlink(f"{pin_root}/pin_seen")
    with pytest.raises(VerifierError, match="pin_rejected"):
        load(spec, pin_root=pin_root)
    assert _pinned_map_ids(pin_root) == {n: ids[n] for n in ("pin_config", "pin_events")}


def test_a_load_whose_programs_cannot_be_pinned_leaves_nothing_pinned(pin_root):
    from pybpf.maps import Map
    from pybpf.sys.uapi import MapType

    progs = f"{pin_root}/progs"
    spec = ObjectSpec.from_file(str(bpf_object("tests/pin_by_name")))
    with Map.create(MapType.ARRAY, 4, 4, 1, name="pin_ok") as taken:
        taken.pin(f"{progs}/pin_ok")
        taken_id = taken.id
    with pytest.raises(BPFError, match=f"cannot pin program 'pin_ok' at {progs}/pin_ok: EEXIST"):
        load(spec, programs=["pin_ok"], pin_root=pin_root, pin_programs=progs)
    assert os.listdir(pin_root) == ["progs"]  # no map pinned by name is left
    assert _pinned_map_ids(progs) == {"pin_ok": taken_id}
    with load(spec, programs=["pin_ok"], pin_root=pin_root, pin_programs=f"{progs}/new") as obj:
        assert _pinned_prog_id(f"{progs}/new/pin_ok") == obj.programs["pin_ok"].id
    assert sorted(os.listdir(pin_root)) == [*PIN_BY_NAME, "progs"]  # pins outlive the object
