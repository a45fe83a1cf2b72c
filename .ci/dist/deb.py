"""Build pybpf_VERSION-1_all.deb: pybpf and xdptcp for Debian's python3, from a staged tree.

    python .ci/dist/deb.py [--out dist]

The package depends only on python3, python3-pyelftools and python3-construct (pure Python,
architecture all). It holds the two packages (with the compiled capture object) in
/usr/lib/python3/dist-packages, the /usr/bin/xdptcp and /usr/bin/pybpf wrappers, the man pages
and bash completions generated from the argparse parsers, and /usr/share/doc/pybpf. Byte code is
compiled by postinst and removed by prerm, as dh_python3 does, so a purge leaves nothing. Every
file carries the last commit's time: two builds of one commit are the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import completion
import manpage
from common import BPF_SOURCES, ROOT, package_files, source_date_epoch, stamp_tree, version

PACKAGE = "pybpf"
DEB_REVISION = "1"
SITE = "usr/lib/python3/dist-packages"
DEPENDS = "python3 (>= 3.9), python3-pyelftools, python3-construct"
COMMANDS = ("xdptcp", "pybpf")
OBJ = f"{SITE}/xdptcp/data/xdptcp.bpf.o"  # the compiled capture program

CONTROL = """\
Package: {package}
Version: {version}
Architecture: all
Maintainer: {maintainer}
Installed-Size: {size}
Depends: {depends}
Recommends: iproute2
Section: net
Priority: optional
Description: pure-Python eBPF loader, and xdptcp: TCP capture at XDP
 pybpf loads BPF objects built by clang (ELF with BTF: maps, global data,
 relocations, CO-RE) with raw bpf() system calls, rtnetlink and mmap'd ring
 buffers; no libbpf, no compiler at run time. The pybpf command shows each
 stage of loading an object.
 .
 xdptcp captures TCP at XDP, the earliest point of ingress: its BPF program
 filters in the kernel, and xdptcp prints each packet as tcpdump -nn does,
 as JSON, or writes a pcap file. xdptcp --demo shows it on two test hosts
 (network namespaces), and needs iproute2.
"""

# As dh_python3 writes them: byte code is made on the host, for the Pythons it has, and removed
# with the package. The __pycache__ directories under our own two packages are ours alone.
POSTINST = """\
#!/bin/sh
set -e
if [ "$1" = configure ] && command -v py3compile >/dev/null 2>&1; then
    py3compile -p {package}
fi
"""
PRERM = """\
#!/bin/sh
set -e
if command -v py3clean >/dev/null 2>&1; then
    py3clean -p {package}
fi
for dir in {dirs}; do
    [ -d "$dir" ] && find "$dir" -depth -type d -name __pycache__ -exec rm -rf {{}} +
done
exit 0
"""
# pybpf keeps the kernel BTF index it computed under /var/cache/pybpf (pybpf/btf/cache.py): a
# cache, so it goes with a purge.
POSTRM = """\
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    rm -rf /var/cache/pybpf
fi
"""
WRAPPER = """\
#!/usr/bin/python3
import sys

from {name}.entry import main

sys.exit(main())
"""
METADATA = """\
Metadata-Version: 2.1
Name: {package}
Version: {version}
Summary: A pure-Python eBPF loader, and xdptcp: TCP capture at XDP
License: MIT
Requires-Python: >=3.9
Requires-Dist: pyelftools
Requires-Dist: construct
"""
COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pybpf
Comment: xdptcp.bpf.o, xdptcp_walk.bpf.o and xdptcp_text.bpf.o are compiled with
 clang from xdptcp.bpf.c, xdptcp_walk.bpf.c, xdptcp_text.bpf.c and xdptcp.h, which are
 in /usr/share/doc/pybpf/source.

Files: *
Copyright: {year} the pybpf and xdptcp authors
License: MIT

Files: {site}/xdptcp/data/xdptcp.bpf.o
Copyright: {year} the pybpf and xdptcp authors
License: GPL-2
 On Debian systems the full text of the GNU General Public License version 2
 is in /usr/share/common-licenses/GPL-2.

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
"""
LINTIAN = """\
# eBPF byte code for the kernel's verifier, the same on every architecture (little-endian BPF:
# a big-endian host would need a bpfeb build of it), not code for the CPU.
{package}: arch-independent-package-contains-binary-or-object [{obj}]
# built from a source tree, not uploaded to Debian: there is no ITP bug to close
{package}: initial-upload-closes-no-bugs
"""
CHANGELOG = """\
{package} ({version}) unstable; urgency=medium

  * Built from the source tree at commit {commit}.

 -- {maintainer}  {date}
"""


def git(*args: str, default: str = "") -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return default


def maintainer() -> str:
    """DEBFULLNAME/DEBEMAIL as Debian's tools take them, else the last commit's author."""
    if os.environ.get("DEBEMAIL"):
        return f"{os.environ.get('DEBFULLNAME', 'pybpf maintainers')} <{os.environ['DEBEMAIL']}>"
    return git("log", "-1", "--format=%an <%ae>", default="pybpf maintainers <root@localhost>")


def gz(data: bytes) -> bytes:
    """gzip -9n: no name and no time inside, so the bytes depend on the contents alone."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(data)
    return buf.getvalue()


def put(root: Path, rel: str, data: bytes, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def stage(root: Path, ver: str, debver: str, epoch: int) -> None:
    for rel in package_files():
        put(root, f"{SITE}/{rel}", (ROOT / rel).read_bytes())
    info = f"{SITE}/{PACKAGE}-{ver}.dist-info"
    put(root, f"{info}/METADATA", METADATA.format(package=PACKAGE, version=ver).encode())
    put(root, f"{info}/INSTALLER", b"dpkg\n")
    for name in COMMANDS:
        put(root, f"usr/bin/{name}", WRAPPER.format(name=name).encode(), 0o755)
        put(root, f"usr/share/man/man8/{name}.8.gz", gz(manpage.page(name).encode()))
        put(root, f"usr/share/bash-completion/completions/{name}", completion.script(name).encode())
    doc = f"usr/share/doc/{PACKAGE}"
    year = time.gmtime(epoch).tm_year
    put(root, f"{doc}/copyright", COPYRIGHT.format(site=SITE, year=year).encode())
    overrides = LINTIAN.format(package=PACKAGE, obj=OBJ)
    put(root, f"usr/share/lintian/overrides/{PACKAGE}", overrides.encode())
    put(root, f"{doc}/README.md", (ROOT / "README.md").read_bytes())
    for rel in BPF_SOURCES:  # what the GPL-2.0 capture object is built from
        data = (ROOT / rel).read_bytes()
        name = Path(rel).name
        if len(data) > 4096:  # Debian compresses documentation over 4 kB
            put(root, f"{doc}/source/{name}.gz", gz(data))
        else:
            put(root, f"{doc}/source/{name}", data)
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))
    changelog = CHANGELOG.format(
        package=PACKAGE,
        version=debver,
        commit=git("rev-parse", "--short=12", "HEAD", default="unknown"),
        maintainer=maintainer(),
        date=date,
    )
    put(root, f"{doc}/changelog.Debian.gz", gz(changelog.encode()))


def control_files(root: Path, debver: str) -> None:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    # Installed-Size the way dpkg-gencontrol counts it: KiB per file rounded up, 1 per directory
    dirs = {p.parent for p in files} - {root}
    size = sum((p.stat().st_size + 1023) // 1024 for p in files) + len(dirs)
    md5 = "".join(
        f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}\n"
        for p in files
    )
    pkg_dirs = " ".join(f"/{SITE}/{pkg}" for pkg in ("pybpf", "xdptcp"))
    control = CONTROL.format(
        package=PACKAGE, version=debver, maintainer=maintainer(), size=size, depends=DEPENDS
    )
    put(root, "DEBIAN/control", control.encode())
    put(root, "DEBIAN/md5sums", md5.encode())
    put(root, "DEBIAN/postinst", POSTINST.format(package=PACKAGE).encode(), 0o755)
    put(root, "DEBIAN/prerm", PRERM.format(package=PACKAGE, dirs=pkg_dirs).encode(), 0o755)
    put(root, "DEBIAN/postrm", POSTRM.encode(), 0o755)


def build(out_dir: Path) -> Path:
    ver = version()
    debver = f"{ver}-{DEB_REVISION}"
    epoch = source_date_epoch()
    root = ROOT / "build" / "dist" / "deb"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    stage(root, ver, debver, epoch)
    control_files(root, debver)
    stamp_tree(root, epoch)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE}_{debver}_all.deb"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(target)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return target


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "dist")
    args = p.parse_args()
    if not shutil.which("dpkg-deb"):
        print("deb: dpkg-deb is missing (apt-get install dpkg)", file=sys.stderr)
        return 1
    target = build(args.out.resolve())
    print(f"{target}: {target.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
