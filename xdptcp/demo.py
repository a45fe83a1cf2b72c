"""``xdptcp --demo``: a real capture on test hosts that the demo makes and removes itself.

Two network namespaces joined by a veth pair (198.18.0.0/15 and 2001:db8::/32 addresses, the
ranges set aside for tests and documentation), the capture programs attached to the client's end
only — XDP for what arrives, tc egress for what leaves — a short TCP conversation (connect, send,
close) from one host to the other, every packet printed as ``tcpdump -nn -i any`` would (with
``In``/``Out``), and everything removed at the end — the host's own namespace is never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from pybpf.gcpause import resume
from xdptcp.attach import CaptureError, interface
from xdptcp.capture import Capture
from xdptcp.options import EXIT_OK, OutputOptions
from xdptcp.record import capacity_for
from xdptcp.sinks import TextSink, print_summary

SERVER_PORT = 5001

SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
data = c.recv(4096)
c.sendall(b"pong: " + data)
c.close(); s.close()
"""

CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(b"ping from xdptcp --demo\\n")
c.recv(4096)
c.close()
"""


def sh(*args: str) -> None:
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode != 0:
        raise CaptureError(f"demo setup: {' '.join(args)}: {res.stderr.strip()}")


class TestHosts:
    """Namespaces ``<base>a`` and ``<base>b`` with veth ends ``xdpdemoa``/``xdpdemob``."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.ns_a, self.ns_b = f"xdptcp-demo-{tag}-a", f"xdptcp-demo-{tag}-b"
        self.if_a, self.if_b = "xdpdemoa", "xdpdemob"
        self.ip_a, self.ip_b = "198.18.0.1", "198.18.0.2"

    def create(self) -> None:
        sh("ip", "netns", "add", self.ns_a)
        sh("ip", "netns", "add", self.ns_b)
        # Records carry an ifindex; in two fresh namespaces both ends would get the same one,
        # so give them distinct indexes to tell the two directions apart.
        base = str(1000 + os.getpid() % 30000 * 2)
        sh(
            "ip",
            "-n",
            self.ns_a,
            "link",
            "add",
            self.if_a,
            "index",
            base,
            "type",
            "veth",
            "peer",
            "name",
            self.if_b,
            "index",
            str(int(base) + 1),
            "netns",
            self.ns_b,
        )
        for ns, ifname, ip, ip6 in (
            (self.ns_a, self.if_a, self.ip_a, "2001:db8::1"),
            (self.ns_b, self.if_b, self.ip_b, "2001:db8::2"),
        ):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifname)
            sh("ip", "-n", ns, "-6", "addr", "add", f"{ip6}/64", "dev", ifname, "nodad")
            sh("ip", "-n", ns, "link", "set", ifname, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def remove(self) -> None:
        for ns in (self.ns_a, self.ns_b):
            subprocess.run(("ip", "netns", "del", ns), capture_output=True)

    def converse(self) -> None:
        """Server on host b, client on host a: handshake, one request, one reply, close."""
        server = subprocess.Popen(
            (
                "ip",
                "netns",
                "exec",
                self.ns_b,
                sys.executable,
                "-c",
                SERVER,
                self.ip_b,
                str(SERVER_PORT),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            if server.stdout.readline().strip() != "ready":
                raise CaptureError(f"demo server did not start: {server.stderr.read().strip()}")
            client = subprocess.run(
                (
                    "ip",
                    "netns",
                    "exec",
                    self.ns_a,
                    sys.executable,
                    "-c",
                    CLIENT,
                    self.ip_b,
                    str(SERVER_PORT),
                ),
                capture_output=True,
                text=True,
                timeout=20,
            )
            if client.returncode != 0:
                raise CaptureError(f"demo client failed: {client.stderr.strip()}")
            server.wait(timeout=10)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


def run_demo(out: OutputOptions, mode: str = "auto") -> int:
    """Make two test hosts, capture a short conversation between them, remove everything."""
    hosts = TestHosts()
    say = lambda msg: print(f"xdptcp: {msg}", file=sys.stderr)  # noqa: E731
    try:
        hosts.create()
        say(
            f"test hosts: {hosts.ns_a} ({hosts.if_a} {hosts.ip_a}) <-> "
            f"{hosts.ns_b} ({hosts.if_b} {hosts.ip_b})"
        )
        # One side only: its two directions are the whole conversation.
        ifaces = [interface(hosts.if_a, hosts.ns_a)]
        snaplen, capacity, _ = capacity_for(out.snaplen)
        rodata = {"xdptcp_snaplen": snaplen, "xdptcp_capacity": capacity}
        sink = TextSink(out.formatter(several_interfaces=True, live=True), sys.stdout)
        with Capture(ifaces, mode=mode, rodata=rodata, notice=say) as cap:
            where = cap.describe()
            say(f"capturing on {where}; client {hosts.ip_a} -> server {hosts.ip_b}:{SERVER_PORT}")
            resume()  # started, as xdptcp -i is once capturing (pybpf.gcpause)
            done = threading.Event()
            talker = threading.Thread(target=_talk, args=(hosts, done), daemon=True)
            talker.start()
            captured = 0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                cap.wait(100)
                for batch in cap.batches():
                    captured += sink.write(batch)[0]
                if done.is_set() and not talker.is_alive():
                    break
            time.sleep(0.2)
            cap.close_attachments()
            for batch in cap.batches():
                captured += sink.write(batch)[0]
            print_summary(captured, cap.counters(), 0, sys.stderr, sink.unshown)
        if getattr(done, "error", None):
            raise done.error
    finally:
        hosts.remove()
        say("test hosts removed")
    return EXIT_OK


def _talk(hosts: TestHosts, done: threading.Event) -> None:
    try:
        time.sleep(0.2)
        hosts.converse()
    except Exception as e:  # reported by the main thread
        done.error = e
    finally:
        done.set()
