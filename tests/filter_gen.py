"""Filter expressions generated systematically: every primitive, qualifier and operator, nested
offsets, precedence cases — the set the compiler is compared with libpcap on.

``expressions()`` is deterministic (a fixed seed), so a disagreement found once is found again;
the expressions that ever disagreed are also kept by hand in tests/filter_regressions.txt.
"""

from __future__ import annotations

import random

V4 = ["198.18.0.1", "198.18.0.2", "224.0.0.9"]
V6 = ["2001:db8::1", "2001:db8:1::2"]
DIRS = ["", "src ", "dst ", "src or dst ", "src and dst "]
PORTS = ["80", "443", "22", "15", "1500", "http", "https", "ssh"]
RELOPS = ["=", "==", "!=", "<", "<=", ">", ">="]
ARITH = ["+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"]


def hosts() -> list[str]:
    out = []
    for addr in V4 + V6:
        for d in DIRS:
            out.append(f"{d}host {addr}")
        out.append(f"{'ip' if '.' in addr else 'ip6'} src host {addr}")
        out.append(f"{'ip' if '.' in addr else 'ip6'} host {addr}")
    out += [f"src {V4[0]}", f"dst {V6[0]}", "host 198.18", "host 3323068417"]
    return out


def nets() -> list[str]:
    return [
        "net 198.18.0.0/16", "net 198.18.0.0/15", "src net 198.19", "dst net 198.18.200.0/24",
        "net 198.18.200.0 mask 255.255.255.0", "net 198", "net 224.0.0.0/4",
        "net 2001:db8::/32", "net 2001:db8:1::/48", "ip6 src net 2001:db8:ffff::/48",
        "src and dst net 198.18.0.0/16", "dst net 2001:db8::/64", "ip net 198.18.0.0/24",
    ]  # fmt: skip


def ports() -> list[str]:
    out = []
    for p in PORTS:
        for q in [
            "",
            "src ",
            "dst ",
            "tcp ",
            "tcp src ",
            "tcp dst ",
            "src or dst ",
            "src and dst ",
        ]:
            out.append(f"{q}port {p}")
    out += [
        "portrange 10-20", "src portrange 1000-2000", "tcp dst portrange 400-500",
        "portrange 1-100", "portrange http-https", "dst portrange 2000-1000",
        "tcp portrange 0-65535", "src or dst portrange 15-22",
    ]  # fmt: skip
    return out


def link() -> list[str]:
    return [
        "ether host 02:00:00:00:00:01", "ether src 02:00:00:00:00:01",
        "ether dst 02:00:00:00:00:02", "ether dst ff:ff:ff:ff:ff:ff", "ether broadcast",
        "ether multicast", "broadcast", "multicast", "ether src and dst 02:00:00:00:00:01",
        "ether src or dst 02:00:00:00:00:02", "ether proto 0x800", "ether proto \\ip6",
        "ether proto 0x8100", "ether proto \\ip", "link src 02:00:00:00:00:01",
        "ether dst 33:33:00:00:00:fb", "ether host 02-00-00-00-00-02",
    ]  # fmt: skip


def protocols() -> list[str]:
    return [
        "ip", "ip6", "tcp", "ip proto 6", "ip6 proto 6", "proto \\tcp", "ip6 proto 0",
        "ip6 proto 44", "proto 6", "ip proto \\tcp", "ip6 proto 43", "ip6 proto 60",
        "vlan", "vlan 10", "vlan 20", "vlan 100", "ip multicast", "ip broadcast",
        "ip6 multicast", "len > 100", "len < 80", "len = 74", "greater 100", "less 80",
        "len - 14 >= 60", "len % 4 = 0", "len / 2 > 45", "len & 1 = 1",
    ]  # fmt: skip


def loads(rnd: random.Random) -> list[str]:
    out = []
    protos = {
        "ether": [0, 6, 12, 13, 14, 15, 16, 20, 23],
        "ip": [0, 1, 2, 6, 8, 9, 16, 19],
        "ip6": [0, 6, 7, 8, 23, 24, 39, 40],
        "tcp": [0, 1, 2, 3, 12, 13, 14, 20, 21],
    }
    for proto, offs in protos.items():
        for off in offs:
            for size in ("", ":1", ":2", ":4"):
                op = rnd.choice(RELOPS)
                value = rnd.choice([0, 1, 2, 6, 0x12, 0x40, 0x50, 0x800, 0x4500, 0xC612, 80])
                out.append(f"{proto}[{off}{size}] {op} {value}")
            out.append(f"{proto}[{off}] & 0x{rnd.randrange(1, 256):02x} != 0")
    for op in ARITH:
        for left in ("tcp[13]", "tcp[2:2]", "ip[0]", "len", "ether[12:2]", "ip6[6]"):
            k = rnd.choice([1, 2, 3, 4, 7, 16, 31])
            out.append(f"{left} {op} {k} {rnd.choice(RELOPS)} {rnd.choice([0, 1, 5, 20, 80, 300])}")
            out.append(
                f"{left} {op} tcp[{rnd.randrange(20)}] {rnd.choice(RELOPS)} {rnd.randrange(64)}"
            )
    out += [
        "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
        "tcp[((tcp[12] & 0xf0) >> 2)] = 0x47",
        "tcp[(tcp[12] >> 4) * 4:2] = 0x4745",
        "tcp[tcp[12] >> 4] = 0",
        "ip[(ip[0] & 0xf) << 2] = tcp[0]",
        "ether[14 + ((ether[14] & 0xf) << 2):2] = tcp[0:2]",
        "ip6[40 + (tcp[12] >> 4)] != 1",
        "tcp[20] = 0x47", "tcp[20:4] = 0x47455420", "tcp[40:4] = 0", "tcp[100] = 0",
        "-tcp[0] < 5", "-(tcp[0] - 1) > 0", "- tcp[13] = -2", "tcp[0] ^ 1 + 2 = 3",
        "tcp[0] + tcp[1] ^ tcp[2] * 2 > 10", "tcp[1] | tcp[3] & 0xf0 = 0x50",
        "tcp[2:2] / (tcp[3] & 3) = 0", "tcp[2:2] % (tcp[3] & 7) = 1", "tcp[2] << tcp[3] > 0",
        "tcp[2] << (tcp[3] & 0x27) > 0x40", "tcp[0:2] >> (tcp[13] & 0x3f) = 0",
        "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn",
        "tcp[tcpflags] = tcp-ack", "tcp[13] & (tcp-fin|tcp-rst) != 0", "tcp[tcpflags] > 16",
        "tcp[tcpflags] & tcp-push != 0 and tcp[tcpflags] & tcp-ack != 0",
        "tcp[tcpflags] & (tcp-ece|tcp-cwr|tcp-urg) != 0", "(tcp[13] & 2) = 2",
        "ip[6:2] & 0x1fff = 0", "ip[2:2] > 100", "ip[8] = 64", "ip[0] & 0xf != 5",
        "ip6[4:2] > 20", "ip6[7] = 64", "1 = 1", "0 = 1", "(1) + 2 = 3", "tcp[0:4] > 0x7fffffff",
        "tcp[4:4] - 1 > 0xfffffff0", "tcp[0:2] * 65536 + tcp[2:2] = 0x501bb",
    ]  # fmt: skip
    return out


def refused() -> list[str]:
    """Expressions libpcap takes but that cannot match a TCP frame, and libpcap's own errors."""
    return [
        "udp", "icmp", "arp", "rarp", "sctp", "icmp6", "igmp", "pim", "esp", "ah", "vrrp",
        "port 53 and udp", "udp port 53", "icmp[icmptype] = icmp-echo", "ip proto 17",
        "ether proto \\arp", "udp[0:2] = 53", "arp host 198.18.0.1", "ip6 proto 58",
        "host", "port 80 port 81", "tcp or 80", "80", "net 198.18.0.1/15", "vlan 4096",
        "port 65536", "ip port 80", "ip6 host 198.18.0.1", "tcp src 198.18.0.1",
        "ether[0:3] = 1", "tcp[0] / 0 = 1", "tcp[0] << 32 = 1", "tcp broadcast",
        "tcp proto 6", "tcp[0] = 5-3", "(port 80", "port 80)", "not", "host 02:00:00:00:00:01",
        "ip6 multicast and ip proto 17", "udp or port 80", "not udp", "tcp and not udp",
    ]  # fmt: skip


def atoms(rnd: random.Random) -> list[str]:
    return hosts() + nets() + ports() + link() + protocols() + loads(rnd)


def combine(rnd: random.Random, base: list[str], count: int) -> list[str]:
    """Boolean combinations: precedence (and/or are equal, left to right), not, parentheses."""
    forms = [
        "{a} and {b}", "{a} or {b}", "not {a}", "! {a} && {b}", "{a} || {b} && {c}",
        "{a} and {b} or {c}", "{a} or ({b} and {c})", "not ({a} or {b})", "!({a}) or not {b}",
        "({a} or {b}) and ({c} or {d})", "{a} and not {b} and not {c}", "not not {a}",
        "vlan and {a}", "vlan 10 and {a}", "{a} or vlan and {b}", "vlan and vlan and {a}",
        "vlan 100 and vlan 10 and {a}", "not vlan and {a}", "{a} and vlan or {b}",
        "({a} or vlan) and {b}",
    ]  # fmt: skip
    out = []
    for i in range(count):
        form = forms[i % len(forms)]
        parts = {k: rnd.choice(base) for k in "abcd"}
        out.append(form.format(**parts))
    return out


def continuations() -> list[str]:
    """``host A or B``: an id after and/or reuses the qualifiers before it."""
    return [
        "host 198.18.0.1 or 198.18.0.2", "src host 198.18.0.1 or 198.18.0.2",
        "host 198.18.0.1 and not 198.18.0.2", "port 80 or 443 or 22", "tcp dst port 80 or 443",
        "src port 80 and not 443", "port 80 and (443 or 22)", "port 80 or (443 and 22)",
        "net 198.18.0.0/16 or 198.19.0.0/16", "host 2001:db8::1 or 2001:db8:1::2",
        "dst portrange 1-100 or 400-500", "ether src 02:00:00:00:00:01 or 02:00:00:00:00:02",
        "host 198.18.0.1 or 198.18.0.2 and port 80", "port 80 or 443 and not host 198.18.0.1",
        "host 198.18.0.1 or not (198.18.0.2 or 224.0.0.9)", "ip proto 6 or 17",
    ]  # fmt: skip


def expressions(count: int = 3000, seed: int = 12) -> list[str]:
    rnd = random.Random(seed)
    single = atoms(rnd)
    out = single + [f"not {a}" for a in single[::3]] + continuations() + refused()
    out += combine(rnd, single, max(count - len(out), 0))
    return list(dict.fromkeys(out))
