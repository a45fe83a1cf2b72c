#!/bin/bash
# Runs inside a virtme-ng guest (see kmatrix.py): makes the guest look like a booted Debian host of
# that kernel, then runs the selected tests with the repository's .venv Python.
#
#   guest.sh REPO OUT BOOTDIR CI TIME_SCALE SECONDS
# OUT is a host directory shared read-write: pytest's arguments are read from OUT/pytest-args (one
# a line), the results (junit.xml, pytest.log, rc) land there.
# After SECONDS pytest is interrupted, and still writes junit.xml for the tests that ran.
set -u
REPO=$1 OUT=$2 BOOTDIR=$3 CI_VALUE=$4 TIME_SCALE=$5 SECONDS_LEFT=$6
mapfile -t PYTEST_ARGS <"$OUT/pytest-args"

exec >"$OUT/guest.log" 2>&1
fail() {
    echo "guest: $*"
    exit 1
}
echo "guest: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"

# virtme-ng mounts the host's root over 9p without caching, so every stat and open is a round trip
# to the host: Python spends most of its start-up there. The runner exports the same tree read-only
# a second time; mounted with cache=loose, what the tests read (Python, tools, the repository) is
# cached in the guest. Nothing is written there: results go to OUT, scratch files to a tmpfs.
HOSTFS=/run/hostfs
mkdir -p $HOSTFS
mount -t 9p -o ro,trans=virtio,version=9p2000.L,cache=loose,msize=512000 pybpfhost $HOSTFS ||
    fail "cannot mount the host's filesystem (9p tag pybpfhost)"
# A private /tmp, so pytest's scratch directories do not mix with the host's; OUT first, as
# virtme-ng shares the host's /tmp read-write.
mkdir -p /run/out && mount --bind "$OUT" /run/out || fail "cannot bind $OUT"
mount -t tmpfs tmpfs /tmp || fail "cannot mount a tmpfs on /tmp"
for dir in /usr /opt /root "$REPO"; do
    if [ -d "$HOSTFS$dir" ]; then
        mkdir -p "$dir" && mount --bind "$HOSTFS$dir" "$dir" || fail "cannot bind $dir"
    fi
done

# libbpf, bpftool and pybpf read the kernel's config from /boot/config-$(uname -r) for .kconfig.
# (virtme-ng hides the host's /var/cache, where the kernels are kept, behind a tmpfs.)
mount --bind "$HOSTFS$BOOTDIR" /boot || fail "cannot bind $BOOTDIR on /boot"
# What systemd mounts on a booted Debian.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || fail "cannot mount bpffs"
ip link set lo up

cd "$REPO" || fail "no $REPO"
echo "guest: tests start at $(cut -d' ' -f1 /proc/uptime) s of uptime"
start=$(date +%s.%N)
# A test still running after this long (no test takes a tenth of it) has every thread's stack
# written to pytest.log: a guest that stops making progress says where.
STUCK=$(awk "BEGIN {print int(300 * $TIME_SCALE)}")
env CI="$CI_VALUE" PYBPF_TEST_TIME_SCALE="$TIME_SCALE" PYTHONDONTWRITEBYTECODE=1 \
    PYBPF_KMATRIX_GUEST=1 timeout -s INT "$SECONDS_LEFT" \
    .venv/bin/python -m pytest -p no:cacheprovider -v -rfEs -o faulthandler_timeout="$STUCK" \
    --junitxml=/run/out/junit.xml "${PYTEST_ARGS[@]}" >/run/out/pytest.log 2>&1
rc=$?
end=$(date +%s.%N)
echo "$rc" >/run/out/rc
echo "guest: pytest exited $rc after $(awk "BEGIN {print $end - $start}") s"
tail -n 3 /run/out/pytest.log
