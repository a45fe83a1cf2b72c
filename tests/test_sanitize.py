"""BTF sanitising for older kernels (libbpf's bpf_object__sanitize_btf rules), in both byte orders.

What the kernel lacks comes from pybpf.sys.features; here it is forced with ``features.assume``
(the seam tests use to play an older kernel), so these tests need no root and no old kernel.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_btf import CILIUM_EL, elf_sections, object_btf

from pybpf import compat
from pybpf.btf.model import (
    BTF,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Int,
    IntEncoding,
    Kind,
    Member,
    Param,
    Ptr,
    Struct,
    Typedef,
    TypeTag,
    UnionType,
    Var,
    VarLinkage,
    VarSecinfo,
)
from pybpf.btf.sanitize import BTFSupport, features_used, sanitize
from pybpf.sys import features
from pybpf.sys.features import Feature

from conftest import bpf_object

BTF_FEATURES = [f for f in Feature if f.name.startswith("BTF_")]

# One of each kind a newer kernel added, and what refers to them.
TYPES = [
    Int("int", 4, IntEncoding.SIGNED, 0, 32),  # 1
    Float("double", 8),  # 2
    TypeTag("user", 1),  # 3
    Ptr(3),  # 4: int __user *
    Enum64("big", 8, False, (EnumValue("SMALL", 1), EnumValue("HUGE", 0xFEDCBA9876543210))),  # 5
    Enum("colour", 4, True, (EnumValue("RED", 0), EnumValue("BLUE", -3))),  # 6
    Struct("event", 24, (Member("ratio", 2, 0), Member("p", 4, 64), Member("b", 5, 128))),  # 7
    DeclTag("tagged", 7, 0),  # 8
    FuncProto(1, (Param("e", 4),)),  # 9
    Func("global_helper", 9, FuncLinkage.GLOBAL),  # 10
    Func("helper", 9, FuncLinkage.STATIC),  # 11
    Var("last_event", 7, VarLinkage.GLOBAL_ALLOCATED),  # 12
    Datasec(".bss", 24, (VarSecinfo(12, 0, 24),)),  # 13
]


def kernel_without(*missing: Feature) -> BTFSupport:
    """The sanitiser's view of a kernel that lacks ``missing``, through the probes' seam."""
    with features.assume({f: f not in missing for f in BTF_FEATURES}):
        return features.btf_support()


@pytest.fixture(params=[True, False], ids=["little-endian", "big-endian"])
def object_types(request) -> BTF:
    """The types as an object of that byte order carries them: encoded, then read back."""
    blob = BTF(TYPES).encode(request.param)
    return BTF.parse(blob, request.param)


def round_trip(btf: BTF, little: bool) -> BTF:
    return BTF.parse(btf.encode(little), little)


@pytest.mark.parametrize("little", [True, False], ids=["little-endian", "big-endian"])
def test_a_kernel_with_everything_gets_the_object_unchanged(little):
    btf = BTF.parse(BTF(TYPES).encode(little), little)
    out = sanitize(btf, kernel_without())
    assert out.btf is btf and out.changes == ()


def test_decl_tag_becomes_a_one_byte_int_of_its_name(object_types):
    out = sanitize(object_types, kernel_without(Feature.BTF_DECL_TAG))
    assert out.btf.type(8) == Int("tagged", 1, IntEncoding.NONE, 0, 8)
    assert [str(c) for c in out.changes] == ["1 DECL_TAG type sanitised to INT"]


def test_type_tag_becomes_const_of_the_same_type(object_types):
    out = sanitize(object_types, kernel_without(Feature.BTF_TYPE_TAG))
    assert out.btf.type(3) == Const(1)
    assert out.btf.format(4) == "const int *"


def test_float_becomes_an_anonymous_struct_of_the_same_size(object_types):
    out = sanitize(object_types, kernel_without(Feature.BTF_FLOAT))
    assert out.btf.type(2) == Struct("", 8, ())
    assert out.btf.sizeof(7) == object_types.sizeof(7) == 24


def test_enum64_becomes_a_union_of_placeholders_and_signed_enums_unsigned(object_types):
    out = sanitize(object_types, kernel_without(Feature.BTF_ENUM64))
    placeholder = len(object_types.types)  # appended: every existing id stays
    assert out.btf.type(placeholder) == Int("enum64_placeholder", 1, IntEncoding.NONE, 0, 8)
    assert out.btf.type(5) == UnionType(
        "big", 8, (Member("SMALL", placeholder, 0), Member("HUGE", placeholder, 0))
    )
    assert out.btf.type(6) == Enum(
        "colour", 4, False, (EnumValue("RED", 0), EnumValue("BLUE", 0xFFFFFFFD))
    )
    assert sorted(str(c) for c in out.changes) == [
        "1 ENUM64 type sanitised to UNION",
        "1 signed ENUM type sanitised to unsigned ENUM",
    ]


def test_global_funcs_become_static(object_types):
    out = sanitize(object_types, kernel_without(Feature.BTF_GLOBAL_FUNC))
    assert out.btf.type(10) == Func("global_helper", 9, FuncLinkage.STATIC)
    assert out.btf.type(11) == object_types.type(11)


def test_without_func_protos_become_enums_and_funcs_typedefs(object_types):
    out = sanitize(object_types, kernel_without(Feature.BTF_FUNC))
    assert out.btf.type(9) == Enum("", 4, False, (EnumValue("e", 4),))
    assert out.btf.type(10) == Typedef("global_helper", 9)


def test_without_datasec_vars_become_ints_and_datasecs_structs(object_types):
    out = sanitize(object_types, kernel_without(Feature.BTF_DATASEC))
    assert out.btf.type(12) == Int("last_event", 1, IntEncoding.NONE, 0, 8)
    assert out.btf.type(13) == Struct("_bss", 24, (Member("last_event", 12, 0),))


@pytest.mark.parametrize("little", [True, False], ids=["little-endian", "big-endian"])
def test_every_rule_at_once_keeps_ids_and_round_trips_in_the_object_byte_order(little):
    btf = BTF.parse(BTF(TYPES).encode(little), little)
    out = sanitize(btf, kernel_without(*BTF_FEATURES))
    assert len(out.btf.types) == len(btf.types) + 1  # the placeholder; nothing removed
    new_kinds = {Kind.FLOAT, Kind.DECL_TAG, Kind.TYPE_TAG, Kind.ENUM64, Kind.VAR, Kind.DATASEC}
    assert not {t.kind for t in out.btf.types} & new_kinds
    assert not any(t.kind == Kind.FUNC for t in out.btf.types)
    assert round_trip(out.btf, little) == out.btf
    assert btf.type(2) == Float("double", 8)  # the object's own BTF is left alone


@pytest.mark.parametrize("missing", BTF_FEATURES, ids=lambda f: f.name)
def test_both_byte_orders_of_the_test_object_sanitise_alike(missing, tmp_path):
    """btf_types.bpf.o as clang wrote it and byte-swapped (the model writes either order)."""
    little = object_btf(bpf_object("tests/btf_types"))
    big = BTF.parse(little.encode(False), False)
    support = kernel_without(missing)
    a, b = sanitize(little, support), sanitize(big, support)
    assert a.btf == b.btf and a.changes == b.changes
    assert BTF.parse(b.btf.encode(False), False) == a.btf


@pytest.mark.parametrize("el_path", CILIUM_EL[:40], ids=lambda p: Path(p).name)
def test_cilium_objects_of_both_byte_orders_sanitise_alike(el_path):
    eb_path = el_path.replace("-el.elf", "-eb.elf")
    _, (el_data,) = elf_sections(el_path, ".BTF")
    _, (eb_data,) = elf_sections(eb_path, ".BTF")
    if el_data is None:
        pytest.skip("an object without BTF")
    support = kernel_without(*BTF_FEATURES)
    el = sanitize(BTF.parse(el_data, True), support)
    eb = sanitize(BTF.parse(eb_data, False), support)
    assert el.btf == eb.btf and el.changes == eb.changes
    assert BTF.parse(eb.btf.encode(False), False) == el.btf


# --- which probes an object needs ---------------------------------------------------------


@pytest.mark.parametrize(
    "types, used",
    [
        ([Int("int", 4, IntEncoding.SIGNED, 0, 32)], set()),
        ([Float("double", 8)], {"float"}),
        ([Int("int", 4, IntEncoding.SIGNED, 0, 32), TypeTag("user", 1)], {"type_tag"}),
        ([Enum64("big", 8, False, ())], {"enum64"}),
        ([Enum("colour", 4, True, (EnumValue("BLUE", -3),))], {"enum64"}),
        ([Enum("colour", 4, False, (EnumValue("RED", 0),))], set()),
        ([Int("int", 4, IntEncoding.SIGNED, 0, 32), Var("x", 1)], {"datasec"}),
        ([Int("int", 4, IntEncoding.SIGNED, 0, 32), DeclTag("tag", 1, -1)], {"decl_tag"}),
        ([FuncProto(0, ()), Func("f", 1, FuncLinkage.STATIC)], {"func"}),
        ([FuncProto(0, ()), Func("f", 1, FuncLinkage.GLOBAL)], {"func", "global_func"}),
        (TYPES, set(BTFSupport.__record_fields__)),
    ],
    ids=[
        "int",
        "float",
        "type_tag",
        "enum64",
        "signed",
        "unsigned",
        "var",
        "decl_tag",
        "static",
        "global",
        "all",
    ],  # fmt: skip
)
def test_features_used_are_those_of_the_kinds_present(types, used):
    assert features_used(BTF(types)) == used


@pytest.mark.parametrize("missing", BTF_FEATURES, ids=lambda f: f.name)
def test_asking_only_the_features_used_sanitises_as_asking_all(missing):
    """btf_types.bpf.o against a kernel without one feature: the probes of the kinds the object
    does not use change nothing of what the sanitiser makes."""
    btf = object_btf(bpf_object("tests/btf_types"))
    with features.assume({f: f is not missing for f in BTF_FEATURES}):
        every = sanitize(btf, features.btf_support())
        used = sanitize(btf, features.btf_support(features_used(btf)))
    assert used == every


def test_loading_probes_only_the_btf_kinds_the_object_uses(monkeypatch):
    """Each probe is a BTF_LOAD of its own: an object without FLOAT, DECL_TAG, TYPE_TAG or
    64-bit enums is loaded without asking the kernel about them."""
    asked = []

    def fake(feature):
        return lambda: asked.append(feature) or True

    monkeypatch.setattr(features, "_kernel", features.FeatureProbes())
    monkeypatch.setattr(features, "_PROBES", {f: fake(f) for f in Feature})
    btf = BTF(
        [
            Int("int", 4, IntEncoding.SIGNED, 0, 32),
            FuncProto(1, ()),
            Func("prog", 2, FuncLinkage.GLOBAL),
            Var("x", 1, VarLinkage.GLOBAL_ALLOCATED),
            Datasec(".data", 4, (VarSecinfo(4, 0, 4),)),
        ]
    )
    out, func_info = compat.btf_for_kernel(btf, None)
    assert out is btf and func_info
    assert set(asked) == {Feature.BTF_FUNC, Feature.BTF_GLOBAL_FUNC, Feature.BTF_DATASEC}
