"""What attaching computes before any system call: USDT argument specs decoded as libbpf decodes
them and laid out as usdt.bpf.h declares them, register offsets as the kernel lays out pt_regs,
uprobe targets, perf_event_attr's size, and the section registry."""

from __future__ import annotations

from pathlib import Path

import pytest

import pybpf
from pybpf.attach import kinds, split_section
from pybpf.btf.kernel import KernelBTF
from pybpf.btf.types import Kind
from pybpf.link.uprobe import SymbolError, UprobeTarget
from pybpf.link.usdt import (
    _PT_REGS_X86_64,
    USDT_SPEC_SIZE,
    ArgSpec,
    ArgType,
    pt_regs_offset,
    usdt_arg_spec,
    usdt_spec,
)
from pybpf.object.sections import _RULES
from pybpf.sys.perf import PERF_ATTR_SIZE, perf_event_attr

from conftest import bpf_object

# (operand, type, val_off, register, signed, size): the forms libbpf's usdt.c parses on x86-64.
ARGS = [
    ("-4@%eax", ArgType.REG, 0, "ax", True, 4),
    ("8@%rdx", ArgType.REG, 0, "dx", False, 8),
    ("-2@%bx", ArgType.REG, 0, "bx", True, 2),
    ("1@%sil", ArgType.REG, 0, "si", False, 1),
    ("-8@%r12", ArgType.REG, 0, "r12", True, 8),
    ("4@%r10d", ArgType.REG, 0, "r10", False, 4),
    ("8@-16(%rbp)", ArgType.REG_DEREF, -16, "bp", False, 8),
    ("-4@4(%rsp)", ArgType.REG_DEREF, 4, "sp", True, 4),
    ("8@(%rax)", ArgType.REG_DEREF, 0, "ax", False, 8),
    ("-4@$77", ArgType.CONST, 77, None, True, 4),
    ("8@$-1", ArgType.CONST, -1, None, False, 8),
]


@pytest.mark.parametrize(("text", "kind", "off", "reg", "signed", "size"), ARGS)
def test_usdt_argument_forms(text, kind, off, reg, signed, size) -> None:
    spec = ArgSpec.parse(text)
    assert (spec.arg_type, spec.val_off, spec.signed, spec.size) == (kind, off, signed, size)
    assert spec.reg_off == (_PT_REGS_X86_64[reg] if reg else 0)
    assert spec.encode()["arg_bitshift"] == 64 - 8 * size


# SIB operands (libbpf 1.7): base, index, log2 of the scale, offset; as usdt.c reads them.
SIB_ARGS = [
    ("8@(%rax,%rdx,8)", 0, "ax", "dx", 3),
    ("-4@4(%rdi,%rsi,4)", 4, "di", "si", 2),
    ("-8@(%rdi,%rax)", 0, "di", "ax", 0),
    ("1@-96(%rbp,%r11,2)", -96, "bp", "r11", 1),
]


@pytest.mark.parametrize(("text", "off", "base", "index", "shift"), SIB_ARGS)
def test_usdt_sib_argument_forms(text, off, base, index, shift) -> None:
    spec = ArgSpec.parse(text)
    assert (spec.arg_type, spec.val_off) == (ArgType.SIB, off)
    assert (spec.reg_off, spec.idx_reg_off) == (_PT_REGS_X86_64[base], _PT_REGS_X86_64[index])
    assert spec.scale_bitshift == shift


@pytest.mark.parametrize(
    "text", ["3@%eax", "8@(%rax,%rdx,3)", "8@(%rax,,8)", "8@%xmm0", "eax", "-4@"]
)
def test_usdt_arguments_pybpf_cannot_decode_are_refused(text) -> None:
    with pytest.raises(SymbolError, match="USDT argument"):
        ArgSpec.parse(text)


def test_pt_regs_offsets_are_the_kernels() -> None:
    kernel = KernelBTF.system()
    regs = kernel.type(kernel.find("pt_regs", Kind.STRUCT))
    offsets = {m.name: m.bit_offset // 8 for m in regs.members}
    for reg, off in _PT_REGS_X86_64.items():
        assert offsets[reg] == off, reg
    assert pt_regs_offset("%eax") == pt_regs_offset("%rax") == pt_regs_offset("%al")


def test_usdt_spec_layout_is_usdt_bpf_h() -> None:
    """The layout written into __bpf_usdt_specs equals the one the BPF side was compiled with."""
    spec = pybpf.ObjectSpec.from_file(str(bpf_object("tests/attach_uprobe")))
    btf = spec.btf
    for name, ours in (("__bpf_usdt_spec", usdt_spec), ("__bpf_usdt_arg_spec", usdt_arg_spec)):
        theirs = btf.type(btf.find(name, Kind.STRUCT))
        assert theirs.size == ours.sizeof()
    arg = btf.type(btf.find("__bpf_usdt_arg_spec", Kind.STRUCT))
    assert [(m.name, m.bit_offset // 8) for m in arg.members] == [
        ("val_off", 0),
        ("arg_type", 8),
        ("reg_off", 12),
        ("arg_signed", 14),
        ("arg_bitshift", 15),
    ]
    assert spec.maps["__bpf_usdt_specs"].value_size == USDT_SPEC_SIZE


def test_uprobe_targets_parse_like_libbpf(tmp_path: Path) -> None:
    plain = UprobeTarget.parse("libc.so.6:getpid")
    assert plain.path.endswith("/libc.so.6") and plain.symbol == "getpid"
    assert UprobeTarget.parse("libc.so.6:getpid+4").offset == plain.offset + 4
    assert UprobeTarget.parse(f"{plain.path}:getpid") == plain
    off = UprobeTarget.parse("/bin/true:0x1130")
    assert off.offset == 0x1130 and off.symbol == ""
    with pytest.raises(SymbolError, match="expected BINARY:FUNCTION"):
        UprobeTarget.parse("no-colon")
    with pytest.raises(SymbolError, match="bad offset"):
        UprobeTarget.parse("libc.so.6:getpid+zz")
    text = tmp_path / "not-elf"
    text.write_text("hello")
    with pytest.raises(SymbolError, match="cannot read .* as ELF"):
        UprobeTarget.parse(f"{text}:main")


def test_perf_event_attr_is_version_8() -> None:
    assert PERF_ATTR_SIZE == perf_event_attr.sizeof() == 136  # PERF_ATTR_SIZE_VER8


def test_every_tracing_section_of_libbpf_has_a_kind() -> None:
    registered = kinds()
    tracing = ("kprobe", "kretprobe", "ksyscall", "kretsyscall", "uprobe", "uretprobe", "usdt",
               "tp", "tracepoint", "raw_tp", "raw_tracepoint", "tp_btf", "fentry", "fexit",
               "fmod_ret", "lsm", "iter", "perf_event")  # fmt: skip
    for pattern, *_ in _RULES:
        prefix, _ = split_section(pattern.rstrip("+"))
        if prefix.split(".")[0] in tracing:
            assert prefix in registered or prefix in ("lsm_cgroup",), prefix
