"""What ``pybpf inspect`` and ``pybpf disasm`` show: an object, stage by stage, without loading it.

``describe`` turns an ``ObjectSpec`` into plain data (the ``--json`` output); ``format_description``
prints it as tables; ``disassemble_program`` prints a linked program with its relocations and
source lines. All of it runs unprivileged: nothing here makes a system call.
"""

from __future__ import annotations

from typing import Any, Optional

from pybpf.object.linker import LinkedProgram, link_program
from pybpf.object.spec import MapSpec, ObjectSpec, ProgramSpec

_MAP_FLAGS = {
    1 << 0: "NO_PREALLOC",
    1 << 1: "NO_COMMON_LRU",
    1 << 2: "NUMA_NODE",
    1 << 3: "RDONLY",
    1 << 4: "WRONLY",
    1 << 5: "STACK_BUILD_ID",
    1 << 6: "ZERO_SEED",
    1 << 7: "RDONLY_PROG",
    1 << 8: "WRONLY_PROG",
    1 << 9: "CLONE",
    1 << 10: "MMAPABLE",
    1 << 11: "PRESERVE_ELEMS",
    1 << 12: "INNER_MAP",
}


def map_type_name(map_type: int) -> str:
    from pybpf.sys.uapi import MapType

    try:
        return MapType(map_type).name
    except ValueError:
        return f"UNKNOWN_{map_type}"


def flag_names(flags: int) -> list[str]:
    names = [name for bit, name in _MAP_FLAGS.items() if flags & bit]
    rest = flags & ~sum(_MAP_FLAGS)
    return names + ([hex(rest)] if rest else [])


def _link(spec: ObjectSpec, prog: ProgramSpec) -> tuple[Optional[LinkedProgram], str]:
    try:
        return link_program(spec, prog), ""
    except Exception as e:  # shown, not raised: inspect must show what it can
        return None, str(e)


def _map(m: MapSpec) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": m.name,
        "type": map_type_name(m.map_type),
        "key_size": m.key_size,
        "value_size": m.value_size,
        "max_entries": m.max_entries,
        "flags": flag_names(m.flags),
        "origin": m.origin,
    }
    if m.inner is not None:
        d["inner"] = _map(m.inner)
    if m.init_slots:
        d["init"] = {str(k): v for k, v in m.init_slots}
    if m.pinning:
        d["pinning"] = "by_name" if m.pinning == 1 else m.pinning
    return d


def _program(spec: ObjectSpec, p: ProgramSpec) -> dict[str, Any]:
    linked, problem = _link(spec, p)
    d: dict[str, Any] = {
        "name": p.name,
        "type": p.prog_type or "UNKNOWN",
        "section": p.section,
        "attach_type": p.attach_type,
        "insns": len(p.insns),
    }
    if p.attach_target:
        d["attach_target"] = p.attach_target
    if linked is None:
        d["link_error"] = problem
        return d
    d["linked_insns"] = len(linked.insns)
    d["subprograms"] = linked.subprograms
    inlined = [piece.function for piece in linked.pieces if piece.inlined]
    if inlined:
        d["inlined"] = inlined
    relocs = [
        {
            "insn": r.insn_idx,
            "kind": r.kind.value,
            "symbol": r.symbol,
            "section": r.target_section,
            "offset": r.offset,
        }
        for r in linked.relocations
    ]
    relocs += [{"insn": i, "kind": kind, "symbol": callee} for i, kind, callee in linked.calls]
    d["relocations"] = sorted(relocs, key=lambda r: r["insn"])
    return d


def _core(spec: ObjectSpec) -> list[dict[str, Any]]:
    ext = spec.btf_ext
    if ext is None or spec.btf is None:
        return []
    out = []
    for section, records in getattr(ext, "core_relos", {}).items():
        for r in records:
            out.append(
                {
                    "section": section,
                    "insn": r.insn_idx,
                    "kind": r.kind.name,
                    "type": spec.btf.format(r.type_id),
                    "access": r.access_str,
                }
            )
    return out


def describe(spec: ObjectSpec) -> dict[str, Any]:
    """Everything ``pybpf inspect`` shows, as JSON-ready data."""
    ext = spec.btf_ext
    return {
        "object": spec.path or spec.name,
        "endianness": "little" if spec.little_endian else "big",
        "license": spec.license,
        "kern_version": spec.kern_version,
        "btf_types": len(spec.btf.types) - 1 if spec.btf is not None else None,
        "func_info": sum(len(v) for v in ext.func_info.values()) if ext else 0,
        "line_info": sum(len(v) for v in ext.line_info.values()) if ext else 0,
        "sections": [
            {"index": s.index, "name": s.name, "type": s.type, "size": s.size, "flags": s.flags}
            for s in spec.section_headers
        ],
        "programs": [_program(spec, p) for p in spec.programs.values()],
        "functions": [
            {
                "name": f.name,
                "section": f.section,
                "start": f.insn_start,
                "insns": len(f.insns),
                "global": f.is_global,
            }
            for f in spec.functions.values()
            if f.name not in spec.programs
        ],
        "maps": [_map(m) for m in spec.maps.values()],
        "variables": [
            {"name": v.name, "section": v.section, "offset": v.offset, "size": v.size}
            for v in spec.variables.values()
        ],
        "externs": dict(spec.externs),
        "core_relocations": _core(spec),
    }


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return ["  " + fmt(header)] + ["  " + fmt(r) for r in rows]


def format_description(d: dict[str, Any]) -> str:
    out = [
        f"object {d['object']}: {d['endianness']}-endian, license {d['license'] or '(none)'}, "
        + (f"BTF {d['btf_types']} types" if d["btf_types"] is not None else "no BTF")
        + f", func_info {d['func_info']}, line_info {d['line_info']}, "
        f"CO-RE relocations {len(d['core_relocations'])}",
        "",
        "sections:",
    ]
    out += _table(
        [
            [s["index"], s["name"], s["type"].replace("SHT_", ""), s["size"], s["flags"]]
            for s in d["sections"]
        ],
        ["idx", "name", "type", "size", "flags"],
    )
    out += ["", "programs:"]
    out += _table(
        [
            [
                p["name"],
                p["type"],
                p["section"],
                p["insns"],
                p.get("linked_insns", "-"),
                ", ".join(p.get("subprograms", [])) or "-",
            ]
            for p in d["programs"]
        ],
        ["name", "type", "section", "insns", "linked", "subprograms"],
    )
    out += ["", "maps:"]
    out += _table(
        [
            [
                m["name"],
                m["type"],
                m["key_size"],
                m["value_size"],
                m["max_entries"],
                "|".join(m["flags"]) or "-",
                m["origin"],
            ]
            for m in d["maps"]
        ],
        ["name", "type", "key", "value", "max_entries", "flags", "origin"],
    )
    for p in d["programs"]:
        out += ["", f"relocations of {p['name']}:"]
        if "link_error" in p:
            out.append(f"  cannot link: {p['link_error']}")
            continue
        rows = [
            [
                r["insn"],
                r["kind"],
                r["symbol"],
                f"{r['section']}+{r['offset']}" if "section" in r else "",
            ]
            for r in p["relocations"]
        ]
        out += _table(rows, ["insn", "kind", "symbol", "target"]) if rows else ["  (none)"]
    if d["core_relocations"]:
        out += ["", "CO-RE relocations:"]
        out += _table(
            [
                [c["section"], c["insn"], c["kind"], c["type"], c["access"]]
                for c in d["core_relocations"]
            ],
            ["section", "insn", "kind", "type", "access"],
        )
    return "\n".join(out)


def disassemble_program(spec: ObjectSpec, prog: ProgramSpec) -> list[str]:
    """The linked program, one instruction a line, with relocations and source lines marked."""
    from pybpf.asm.disasm import format_insn

    linked = link_program(spec, prog)
    notes: dict[int, str] = {}
    for r in linked.relocations:
        notes[r.insn_idx] = f"{r.kind.value} {r.symbol}" + (
            f" ({r.target_section}+{r.offset})" if r.kind.value == "data" else ""
        )
    for i, kind, callee in linked.calls:
        notes[i] = f"{kind} {callee}"
    lines_at = {li.insn_idx: li for li in linked.line_info}
    starts = {p.start: p for p in linked.pieces if p.length}
    out = [f"{prog.name} ({prog.prog_type or 'unknown type'}, section {prog.section}):"]
    insns = linked.insns
    i = 0
    while i < len(insns):
        if i in starts and i:
            p = starts[i]
            if p.inlined:
                out.append(f"{p.function} (inlined: {p.length} generated instructions in place "
                           "of the call, each exit a jump past them):")  # fmt: skip
            elif p.continues:
                out.append(f"{p.function} (continued):")
            else:
                how = f", replaced by {p.length} generated instructions" if p.replaced else ""
                out.append(f"{p.function} (from {p.section}{how}):")
        li = lines_at.get(i)
        if li is not None and li.line_text.strip():
            out.append(
                f"  ; {li.line_text.strip()} @ {li.file_name.rsplit('/', 1)[-1]}:{li.line_num}"
            )
        nxt = insns[i + 1] if i + 1 < len(insns) else None
        text = format_insn(insns[i], nxt)
        note = f"    # {notes[i]}" if i in notes else ""
        out.append(f"  {i:4d}: {text}{note}")
        i += 2 if insns[i].is_ld_imm64 else 1
    return out
