"""CO-RE resolution time: all relocations of an object with about a hundred, against vmlinux.

Rows (median of several runs, each in a fresh process so "cold" is really cold):

- cold: read /sys/kernel/btf/vmlinux, index it, resolve every relocation (a process's first
  CO-RE load);
- warm: the same object again in the same process, the kernel BTF already indexed (cached
  in-process by ``KernelBTF.system()``);
- kernel BTF index alone: the one pass over the type section plus the string index;
- full parse for comparison: ``BTF.parse`` of vmlinux, every type decoded.

The budget is warm < 100 ms for ~100 relocations.

    python -m bench core_resolve        (or: python bench/core_resolve.py)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OBJECT = ROOT / "build" / "bpf" / "tests" / "core_many.bpf.o"
VMLINUX = "/sys/kernel/btf/vmlinux"
RUNS = 5
BUDGET_MS = 100.0


def _one_process() -> dict[str, float]:
    """Measured inside one fresh process (imports are done before timing starts)."""
    from pybpf.btf import core
    from pybpf.btf.kernel import KernelBTF
    from pybpf.btf.model import BTF
    from pybpf.object.spec import ObjectSpec

    spec = ObjectSpec.from_file(str(OBJECT))
    relos = spec.btf_ext.core_relos

    def resolve_all() -> int:
        target = KernelBTF.system()
        n = 0
        for section, records in relos.items():
            core.relocate(list(spec.sections[section]), records, spec.btf, target)
            n += len(records)
        return n

    t0 = time.perf_counter()
    count = resolve_all()
    t1 = time.perf_counter()
    resolve_all()
    t2 = time.perf_counter()
    data = Path(VMLINUX).read_bytes()
    t3 = time.perf_counter()
    k = KernelBTF(data)
    k.find_all("task_struct")
    t4 = time.perf_counter()
    BTF.parse(data)
    t5 = time.perf_counter()
    return {
        "relocations": count,
        "cold": (t1 - t0) * 1000,
        "warm": (t2 - t1) * 1000,
        "index": (t4 - t3) * 1000,
        "full parse": (t5 - t4) * 1000,
    }


def run(runs: int = RUNS) -> str:
    if not OBJECT.exists():
        return f"core_resolve: {OBJECT} is missing: run `make bpf`"
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, __file__, "--child"],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout
        samples.append(json.loads(out))
    count = samples[0]["relocations"]
    lines = [
        f"CO-RE resolution, {count} relocations ({OBJECT.name}) against vmlinux, "
        f"median of {runs} processes",
        f"{'what':<34}{'ms':>10}",
    ]
    for key, label in (
        ("cold", "cold (read + index + resolve)"),
        ("warm", "warm (kernel BTF cached)"),
        ("index", "kernel BTF index alone"),
        ("full parse", "BTF.parse of vmlinux (reference)"),
    ):
        lines.append(f"{label:<34}{statistics.median(s[key] for s in samples):>10.1f}")
    warm = statistics.median(s["warm"] for s in samples)
    verdict = "within" if warm < BUDGET_MS else "OVER"
    lines.append(f"warm is {verdict} the {BUDGET_MS:.0f} ms budget")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if "--child" in sys.argv:
        print(json.dumps(_one_process()))
    else:
        print(run())
