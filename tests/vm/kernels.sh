#!/usr/bin/env bash
# The kernels of the matrix: Debian's generic (not cloud: it lacks the 9p modules a virtme-ng guest
# mounts the host with) 6.1 and 6.12 kernels, the newest ABI apt knows of, fetched with apt but never
# installed as this host's kernel: `apt-get download` + `dpkg -x` into a cache, the modules moved to
# /lib/modules/VERSION (where virtme-ng looks for them) and indexed with depmod.
#
#   kernels.sh setup    apt-installs what booting a guest needs (qemu, busybox for virtme-ng's
#                       initramfs, kmod for depmod)
#   kernels.sh fetch    fetches the kernels missing from the cache; prints "VERSION BOOTDIR" per kernel
#
# Both are idempotent and take well under a second when everything is in place.
set -euo pipefail

CACHE=${PYBPF_KMATRIX_CACHE:-/var/cache/pybpf-kmatrix}
# Package names, as patterns for apt-cache; the newest version of each is taken at run time.
SERIES=(
    '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$'
    '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$'
)
TOOLS=(qemu-system-x86 busybox-static kmod xz-utils zstd)

say() { echo "kernels.sh: $*" >&2; }

apt_lists_ready() {
    # apt-cache finds nothing before the first `apt-get update` of a fresh machine.
    [ -n "$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' 2>/dev/null)" ]
}

setup() {
    local missing=()
    for pkg in "${TOOLS[@]}"; do
        dpkg-query -W -f '${Status}\n' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    apt_lists_ready || apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

newest() {
    apt-cache search --names-only "$1" | cut -d' ' -f1 | sort -V | tail -n 1
}

# One kernel: the cache keeps boot/ (vmlinuz, config, System.map); the modules live in /lib/modules.
fetch_one() {
    local pkg=$1 version dir
    version=${pkg#linux-image-}
    version=${version%-unsigned}
    dir=$CACHE/$version
    if [ ! -s "$dir/boot/vmlinuz-$version" ] || [ ! -s "/lib/modules/$version/modules.dep" ]; then
        say "fetching $pkg"
        rm -rf "$dir" && mkdir -p "$dir/deb"
        # apt downloads as the _apt user when it can write there (and warns when it cannot).
        chown _apt "$dir/deb" 2>/dev/null || true
        (cd "$dir/deb" && apt-get download -q "$pkg" >&2)
        dpkg -x "$dir"/deb/*.deb "$dir/x"
        rm -rf "/lib/modules/$version"
        mkdir -p /lib/modules
        mv "$dir/x/lib/modules/$version" "/lib/modules/$version"
        depmod "$version"
        mv "$dir/x/boot" "$dir/boot"
        rm -rf "$dir/x" "$dir/deb"
    fi
    echo "$version $dir/boot"
}

fetch() {
    apt_lists_ready || apt-get update -q >&2
    local pattern pkg
    for pattern in "${SERIES[@]}"; do
        pkg=$(newest "$pattern")
        if [ -z "$pkg" ]; then
            say "apt knows no package matching $pattern"
            exit 1
        fi
        fetch_one "$pkg"
    done
}

case "${1:-}" in
    setup) setup ;;
    fetch) fetch ;;
    *)
        echo "usage: $0 setup|fetch" >&2
        exit 2
        ;;
esac
