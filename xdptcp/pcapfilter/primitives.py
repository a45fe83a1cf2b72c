"""The primitives of pcap-filter(7), each lowered the way libpcap's gencode.c lowers it.

A mixin of the parser: these methods read tokens through it and build ``ir`` trees with its
offsets (``self.linktype``, ``self.linkpl``, which ``vlan`` moves). The errors are libpcap's own
words, so a user who tries the filter with tcpdump reads the same complaint.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

from xdptcp.pcapfilter import ir
from xdptcp.pcapfilter.ir import Bin, Bool, Cmp, Len, Load, Not, Num
from xdptcp.pcapfilter.lexer import EID, END, ESCID, HID, HID6, ID, NUM, Token
from xdptcp.pcapfilter.names import (
    ETH_ARP,
    ETH_IP,
    ETH_IP6,
    ETH_IPX,
    ETH_RARP,
    ETHERMTU,
    ETHERTYPES,
    FOREIGN,
    IPPROTOS,
    KEYWORDS,
    LINK_WORDS,
    LLC_SAPS,
    LLCSAP_IP,
    LLCSAP_IPX,
    LLCSAP_ISONS,
    LLCSAP_NETBEUI,
    PNAMES,
    TRANSPORT,
    UNDEF,
    VLAN_TPIDS,
    FilterError,
    Quals,
    service_port,
)

_DIRS = ("src", "dst")
_ADDRS = ("host", "net", "port", "portrange", "proto", "protochain")
# What may follow a term: where libpcap reads a lone protocol name as one
_TERM_ENDS = ("and", "&&", "or", "||", ")")
# Qualifiers grammar.y takes after a protocol name, for link types xdptcp does not see
_FOREIGN_QUALS = frozenset(
    ["type", "subtype", "dir", "ra", "ta"]
    + [f"{a}{n}" for a in ("addr", "address") for n in range(1, 5)]
)
# What is false on every frame xdptcp captures (an IPv4/IPv6 TCP frame).
_NEVER_PNAMES = frozenset(PNAMES) - {"ip", "ip6", "tcp", *LINK_WORDS}
_TCP_ETHERTYPES = (ETH_IP, ETH_IP6, *VLAN_TPIDS)
# gen_ether_linktype: AppleTalk and AARP also come as 802.3 frames with a SNAP header of this OUI
_SNAP_OUIS = {0x809B: 0x080007, 0x80F3: 0}
# IPv6 next headers that can lead to TCP in a frame xdptcp captures
_TCP_NEXT6 = (6, 0, 43, 60, 44)


class Primitives:
    # --- where a term is not arithmetic -----------------------------------------------------

    def primitive(self) -> Bool:
        t, w = self.tok, self.word()
        if w == "gateway" or (w in PNAMES and self.word(1) == "gateway"):  # `ether gateway A`
            proto = None if w == "gateway" else "link" if w in LINK_WORDS else w
            self.i += 1 if w == "gateway" else 2
            return self.id_with(Quals(proto, None, "gateway", t))
        if w in PNAMES and self.word(1) in _FOREIGN_QUALS:  # `wlan type mgt`
            t = self.toks[self.i + 1]
        if t.kind == ID and t.text in FOREIGN:
            raise self.error(
                f"'{t.text}' is not supported by xdptcp (it sees Ethernet, VLAN, IPv4/IPv6 and "
                "TCP frames)",
                t,
            )
        if w in ("vlan", "less", "greater", "broadcast", "multicast"):
            return self.other(None)
        proto = None
        if w in PNAMES:
            after = self.word(1)
            if after in ("broadcast", "multicast"):
                self.take()
                return self.other("link" if w in LINK_WORDS else w, t)
            if after not in (*_DIRS, *_ADDRS):
                self.take()
                return self.pname(w, t)
            proto = "link" if self.take().text in LINK_WORDS else w
        dir_ = self.direction()
        addr = None
        if self.word() in _ADDRS:
            if dir_ is not None and self.word() == "protochain":  # grammar.y takes no `src`
                raise self.syntax()
            addr = self.take().text
        if proto is None and dir_ is None and addr is None:
            raise self.syntax(t)
        return self.id_with(Quals(proto, dir_, addr, t))

    def direction(self) -> Optional[str]:
        if self.word() not in _DIRS:
            return None
        first = self.take().text
        other = "dst" if first == "src" else "src"
        if self.word() in ("or", "and") and self.word(1) == other:
            how = self.take().text
            self.take()
            return how
        return first

    def pname(self, w: str, t: Token) -> Bool:
        """A protocol name alone: ``ip``, ``tcp``, ``udp``, ``arp`` ..."""
        if w in LINK_WORDS:
            # grammar.y reads `ether` alone as a term only where a term may end (libpcap then
            # refuses it); before anything else it is a qualifier missing its word: `ether 1`
            if self.word() not in _TERM_ENDS and self.tok.kind != END:
                raise self.syntax()
            raise self.error("link layer applied in wrong context", t)
        self.last = None
        if w in ("ip", "ip6", "arp", "rarp"):
            code = self.ethertype({"ip": ETH_IP, "ip6": ETH_IP6, "arp": ETH_ARP}.get(w, ETH_RARP))
        else:
            code = self.proto_abbrev(w)
        return self.never(code, f"'{w}'", t) if w in _NEVER_PNAMES else code

    def other(self, proto: Optional[str], ptok: Optional[Token] = None) -> Bool:
        t = self.take()
        self.last = None
        if t.text == "vlan":
            return self.vlan()
        if t.text in ("less", "greater"):
            n = self.tok
            if n.kind != NUM:
                raise self.syntax()
            self.take()
            if t.text == "greater":
                return Cmp("ge", Len(), Num(self._num(n)))
            return Not(Cmp("gt", Len(), Num(self._num(n))))
        return self.cast(t.text, proto, t)

    def cast(self, kind: str, proto: Optional[str], t: Token) -> Bool:
        """``[ether|ip|ip6] broadcast|multicast``."""
        if proto in (None, "link"):
            if self.link and kind == "broadcast":
                raise self.error("not a broadcast link", t)
            if self.link:
                raise self.error(
                    "link-layer multicast filters supported only on ethernet/FDDI/token ring/"
                    "ARCNET/802.11/ATM LANE/Fibre Channel",
                    t,
                )
            if kind == "broadcast":
                return self.ether_addr(b"\xff" * 6, "dst")
            return Cmp("set", Load(Num(0), 1), Num(1))
        if kind == "broadcast":
            if proto != "ip":
                raise self.error("only link-layer/IP broadcast filters supported", t)
            # tcpdump -r compiles with netmask 0: the host part is all 32 bits
            dst = Load(Num(self.linkpl + 16), 4)
            either = ir.Or(Cmp("eq", dst, Num(0)), Cmp("eq", dst, Num(0xFFFFFFFF)))
            return ir.And(self.ethertype(ETH_IP), either)
        if proto == "ip":
            return ir.And(
                self.ethertype(ETH_IP), Cmp("ge", Load(Num(self.linkpl + 16), 1), Num(224))
            )
        if proto == "ip6":
            return ir.And(self.ethertype(ETH_IP6), self.cmp_at(self.linkpl + 24, 1, 255))
        raise self.error(
            "link-layer multicast filters supported only on ethernet/FDDI/token ring/ARCNET/"
            "802.11/ATM LANE/Fibre Channel",
            t,
        )

    def vlan(self) -> Bool:
        """``vlan [ID]``: a VLAN TPID at the EtherType's place; then every offset moves 4 on."""
        if self.link:
            raise self.error(f"no VLAN support for {self.link}", self.toks[self.i - 1])
        tpid = ir.any_of([self.ethertype(v) for v in VLAN_TPIDS])
        code = tpid
        if self.tok.kind == NUM or self.word() == "(":  # `vlan 10`, `vlan (10)`
            n = self.number_in_parens()
            vid = self._num(n)
            if vid > 0x0FFF:
                raise self.error(f"VLAN tag {vid} greater than maximum 4095", n)
            code = ir.And(tpid, self.cmp_at(self.linkpl, 2, vid, 0x0FFF))
        depth = self.tags() + 1
        self.linktype += 4
        self.linkpl += 4
        return ir.Tag(code, depth)

    # --- head id ----------------------------------------------------------------------------

    def id_with(self, q: Quals) -> Bool:
        """An id under qualifiers ``q``, as grammar.y's ``id`` reads it: an address, number or
        name; ``not id``; a number in any parentheses, ``port ((80))``; or ``(first and|or id
        ...)`` whose first is an address, name, ``not id`` or number, never a parenthesised
        address or list: ``host (A or (B))`` but not ``host ((A))`` nor ``port ((80 or 81))``."""
        self.last = q
        if self.word() != "(":
            return self.nid(q)
        self.enter(self.take())
        try:
            terms, ops = [self.first_id(q)], []
            while self.word() in ("and", "&&", "or", "||"):
                ops.append(self.take().text in ("and", "&&"))
                terms.append(self.id_with(q))
            self.expect(")")
        finally:
            self.nesting -= 1
        self.last = q
        return ir.chain(terms, ops)

    def first_id(self, q: Quals) -> Bool:
        """The first id inside parentheses (grammar.y's ``qid``): a ``pnum`` if it opens
        another parenthesis, else an id without parentheses of its own (``nid``)."""
        if self.word() == "(":
            return self.pnum(q)
        return self.nid(q)

    def pnum(self, q: Quals) -> Bool:
        """A number in any parentheses: ``((80))``; an address or name in them is a syntax
        error, at its token (libpcap's parser sees it there)."""
        if self.word() != "(":
            if self.tok.kind != NUM:
                raise self.syntax()
            return self.nid(q)
        self.enter(self.take())
        try:
            node = self.pnum(q)
            self.expect(")")
        finally:
            self.nesting -= 1
        return node

    def number_in_parens(self) -> Token:
        """grammar.y's ``pnum`` where a number is all it can be (``vlan ((10))``): its token."""
        opened = 0
        try:
            while self.word() == "(":
                self.enter(self.take())
                opened += 1
            n = self.tok
            if n.kind != NUM:
                raise self.syntax()
            self.take()
            for _ in range(opened):
                self.expect(")")
        finally:
            self.nesting -= opened
        return n

    def nid(self, q: Quals) -> Bool:
        """An id without parentheses: an address, number or name, or ``not id``."""
        negate = False  # `not not A` is A, however many
        while self.word() in ("not", "!"):
            self.take()
            negate = not negate
        if negate:
            return Not(self.id_with(q))
        t = self.tok
        if t.kind == ID and t.text in KEYWORDS or t.kind not in (NUM, HID, HID6, EID, ID, ESCID):
            raise self.syntax()
        self.take()
        if t.kind == EID:
            return self.ether_id(q, t)
        if t.kind == HID6:
            return self.ip6_id(q, t)
        if t.kind == HID or (t.kind == NUM and q.addr in (None, "host", "net")):
            return self.ip_id(q, t)
        if t.kind == NUM:
            return self.number_id(q, self._num(t), t)
        return self.name_id(q, t)

    def ether_id(self, q: Quals, t: Token) -> Bool:
        if q.proto != "link" or q.addr not in (None, "host"):
            raise self.error("ethernet address used in non-ether expression", t)
        if self.link:
            raise self.error(
                "ethernet addresses supported only on ethernet/FDDI/token ring/802.11/ATM LANE/"
                "Fibre Channel",
                t,
            )
        groups = t.text.replace("-", ":").replace(".", ":").split(":")
        if len(groups) == 6:  # 2:0:0:0:0:1, 02-00-00-00-00-01, 02.00.00.00.00.01
            mac = bytes(int(x, 16) for x in groups)
        else:  # 0200.0000.0001, 020000000001
            mac = bytes.fromhex("".join(groups))
        return self.ether_addr(mac, q.dir)

    def ether_addr(self, mac: bytes, dir_: Optional[str]) -> Bool:
        def one(off: int) -> Bool:
            word = int.from_bytes(mac[2:], "big")
            return ir.And(
                Cmp("eq", Load(Num(off + 2), 4), Num(word)),
                Cmp("eq", Load(Num(off), 2), Num(int.from_bytes(mac[:2], "big"))),
            )

        return self.directed(dir_, lambda d: one(6 if d == "src" else 0))

    def directed(self, dir_: Optional[str], build) -> Bool:
        if dir_ in ("src", "dst"):
            return build(dir_)
        src, dst = build("src"), build("dst")
        return ir.And(src, dst) if dir_ == "and" else ir.Or(src, dst)

    def ip_id(self, q: Quals, t: Token) -> Bool:
        """gen_ncode/gen_mcode: ``host 198.18.0.1``, ``net 198.18``, ``net 198.18.0.0/15``."""
        # a number takes no mask: its id is made, then the '/' is a syntax error
        with_mask = t.kind == HID and self.word() in ("/", "mask")
        if q.addr in ("port", "portrange", "proto", "protochain") and not with_mask:
            if t.kind == NUM:
                return self.number_id(q, self._num(t), t)
            raise self.error(f"'{q.addr}' modifier applied to ip host", t)
        if t.kind == NUM:
            if q.proto == "link":  # `ether src 5`
                raise self.error("illegal link layer address", t)
            v, vlen = self._num(t), 32
            mask = 0xFFFFFFFF
            if q.addr == "net":
                while v and v & 0xFF000000 == 0:
                    v, mask = (v << 8) & 0xFFFFFFFF, (mask << 8) & 0xFFFFFFFF
            return self.ip_host(q, v, mask, t)
        v, vlen = self._dotted(t)  # an invalid address is named before the qualifiers
        if not with_mask and q.addr in ("gateway", UNDEF):
            raise self.no_address(q, t)
        if q.proto == "link" and not with_mask:  # `ether host 198.18.0.1`
            raise self.error("illegal link layer address", t)
        v = (v << (32 - vlen)) & 0xFFFFFFFF  # 198.18 is 198.18.0.0, with a mask or without
        if self.word() == "/":
            bits = self._mask_length(32)
            mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF if bits else 0
            return self.masked(q, v, mask, t, f"{t.text}/{bits}")
        if self.word() == "mask":
            self.take()
            m = self.tok
            if m.kind != HID:
                raise self.syntax()
            self.take()
            mask, mlen = self._dotted(m)
            mask = (mask << (32 - mlen)) & 0xFFFFFFFF  # mask 255.255 is 255.255.0.0
            return self.masked(q, v, mask, t, f"{t.text} mask {m.text}")
        mask = (0xFFFFFFFF << (32 - vlen)) & 0xFFFFFFFF
        return self.ip_host(q, v, mask, t)

    def masked(self, q: Quals, v: int, mask: int, t: Token, shown: str) -> Bool:
        if v & ~mask & 0xFFFFFFFF:
            raise self.error(f'non-network bits set in "{shown}"', t)
        if q.addr != "net":  # `host 198.18.0.0/16` too
            raise self.error("Mask syntax for networks only", t)
        return self.ip_host(q, v, mask, t)

    def _dotted(self, t: Token) -> tuple[int, int]:
        parts = t.text.split(".")
        try:
            values = [self._part(p) for p in parts]
        except ValueError:
            raise self.error(f"invalid IPv4 address '{t.text}'", t) from None
        if any(p > 255 for p in values):
            raise self.error(f"invalid IPv4 address '{t.text}'", t)
        v = 0
        for p in values:
            v = v << 8 | p
        return v, 8 * len(values)

    @staticmethod
    def _part(text: str) -> int:
        from xdptcp.pcapfilter.lexer import number

        return number(text)

    def ip_host(self, q: Quals, addr: int, mask: int, t: Token) -> Bool:
        """gen_host: IPv4 (and, without a protocol, ARP and RARP) source/destination address."""
        kind = q.addr or "host"
        if q.proto == "link":
            raise self.error(f"link-layer modifier applied to {kind}", t)
        if q.proto == "ip6":
            raise self.error(f"'ip6' modifier applied to ip {kind}", t)
        if q.proto not in (None, "ip", "arp", "rarp"):
            raise self.error(f"'{q.proto}' modifier applied to {kind}", t)

        def hostop(ethertype: int, src_off: int, dst_off: int) -> Bool:
            def one(d: str) -> Bool:
                off = self.linkpl + (src_off if d == "src" else dst_off)
                load = Load(Num(off), 4)
                value = Bin("&", load, Num(mask)) if mask != 0xFFFFFFFF else load
                return ir.And(self.ethertype(ethertype), Cmp("eq", value, Num(addr)))

            return self.directed(q.dir, one)

        if q.proto == "ip":
            return hostop(ETH_IP, 12, 16)
        arp = self.never(hostop(ETH_ARP, 14, 24), "'arp'", t)
        rarp = self.never(hostop(ETH_RARP, 14, 24), "'rarp'", t)
        if q.proto == "arp":
            return arp
        if q.proto == "rarp":
            return rarp
        return ir.Or(ir.Or(hostop(ETH_IP, 12, 16), arp), rarp)

    def _mask_length(self, most: int) -> int:
        """The number after the ``/`` of ``addr/len``: a mask length of at most ``most`` bits."""
        self.take()  # the "/"
        n = self.tok
        if n.kind != NUM:
            raise self.syntax()
        self.take()
        bits = self._num(n)
        if bits > most:
            raise self.error(f"mask length must be <= {most}", n)
        return bits

    def ip6_id(self, q: Quals, t: Token) -> Bool:
        """gen_mcode6: ``host 2001:db8::1``, ``net 2001:db8::/32``; the address and its mask are
        checked before the qualifiers (``port 2001:db8::1/32``: non-network bits)."""
        kind = q.addr or "host"
        bits = 128
        if self.word() == "/":
            bits = self._mask_length(128)
        addr = int(ipaddress.IPv6Address(t.text))
        mask = ((1 << 128) - 1) ^ ((1 << (128 - bits)) - 1)
        if addr & ~mask:
            raise self.error(f'non-network bits set in "{t.text}/{bits}"', t)
        if q.addr not in (None, "host", "net"):  # `port 2001:db8::1`, `tcp or 2001:db8::1`
            raise self.error("invalid qualifier against IPv6 address", t)
        if bits != 128 and q.addr != "net":  # `host 2001:db8::/32`
            raise self.error("Mask syntax for networks only", t)
        if q.proto not in (None, "ip6"):
            what = "link-layer" if q.proto == "link" else f"'{q.proto}'"
            raise self.error(f"{what} modifier applied to ip6 {kind}", t)

        def one(d: str) -> Bool:
            base = self.linkpl + (8 if d == "src" else 24)
            words = []
            for i in (3, 2, 1, 0):  # libpcap compares the last word first
                m = (mask >> (32 * (3 - i))) & 0xFFFFFFFF
                a = (addr >> (32 * (3 - i))) & 0xFFFFFFFF
                if m == 0:
                    continue
                load = Load(Num(base + 4 * i), 4)
                words.append(Cmp("eq", Bin("&", load, Num(m)) if m != 0xFFFFFFFF else load, Num(a)))
            return ir.all_of([self.ethertype(ETH_IP6), *words])

        return self.directed(q.dir, one)

    def number_id(self, q: Quals, v: int, t: Token) -> Bool:
        if q.addr == "port":
            return self.port(q, v, v, t)
        if q.addr == "portrange":
            return self.port(q, v, v, t)
        if q.addr == "proto":
            return self.proto(q, v, t)
        if q.addr == "protochain":
            return self.protochain(q, v, t)
        if q.addr == UNDEF and self.tok.kind != END and self.word() not in _TERM_ENDS:
            # libpcap's parser looks one token past a bare number (it may start a relation,
            # `80 > len`) and finds none it can follow with: `tcp or 80 81` cannot be parsed
            raise self.syntax()
        raise self.no_address(q, t)

    def no_address(self, q: Quals, t: Token, name: bool = False) -> FilterError:
        """gencode's refusal of an id after ``gateway`` (libpcap built with IPv6, as tcpdump's
        is, takes no gateway), or after a term that leaves no qualifiers (``tcp or 80``)."""
        if q.addr == UNDEF:
            return self.error("syntax error in filter expression", t)
        if name:
            return self.error("'gateway' not supported in this configuration", t)
        return self.error("'gateway' requires a name", t)

    def name_id(self, q: Quals, t: Token) -> Bool:
        name = t.text
        if q.addr in ("gateway", UNDEF):
            raise self.no_address(q, t, name=True)
        if q.addr == "port":
            port = service_port(name)
            if port is None:
                raise self.error(f"unknown port '{name}'", t)
            return self.port(q, port, port, t)
        if q.addr == "portrange":
            lo, sep, hi = name.partition("-")
            if not sep:
                raise self.error(f"unknown port in range '{name}'", t)
            ports = [self._port_of(p, t) for p in (lo, hi)]
            return self.port(q, min(ports), max(ports), t)
        if q.addr == "protochain":
            if name not in IPPROTOS:
                raise self.error(f"unknown ip proto '{name}'", t)
            return self.protochain(q, IPPROTOS[name], t)
        if q.addr == "proto":
            table = {**LLC_SAPS, **ETHERTYPES} if q.proto == "link" else IPPROTOS
            if name not in table:
                raise self.error(
                    f"unknown {'ether' if q.proto == 'link' else 'ip'} proto '{name}'", t
                )
            return self.proto(q, table[name], t)
        if q.proto == "link":
            raise self.error(f"unknown ether host '{name}' (/etc/ethers is not read)", t)
        raise self.error(f"unknown host '{name}' (xdptcp does not resolve names)", t)

    def _port_of(self, text: str, t: Token) -> int:
        from xdptcp.pcapfilter.lexer import NUM as NUMK
        from xdptcp.pcapfilter.lexer import _classify, number

        if _classify(text) == NUMK:
            v = number(text)
            if v > 65535:
                raise self.error(f"illegal port number {v} > 65535", t)
            return v
        port = service_port(text)
        if port is None:
            raise self.error(f"unknown port in range '{t.text}'", t)
        return port

    def port(self, q: Quals, lo: int, hi: int, t: Token) -> Bool:
        """gen_port/gen_portrange for IPv4, then IPv6: ``port 80``, ``tcp src portrange 1-99``."""
        kind = q.addr
        if q.proto not in (None, "tcp", "udp", "sctp"):
            raise self.error(f"illegal qualifier of '{kind}'", t)
        for v in (lo, hi):
            if v > 65535:
                raise self.error(f"illegal port number {v} > 65535", t)
        protos = [q.proto] if q.proto else ["tcp", "udp", "sctp"]

        def atom(base: ir.Arith, off: int) -> Bool:
            load = Load(ir.plus(base, Num(off)), 2)
            if kind == "port":
                return Cmp("eq", load, Num(lo))
            return ir.And(Cmp("ge", load, Num(lo)), Not(Cmp("gt", load, Num(hi))))

        def side(base: ir.Arith) -> Bool:
            return self.directed(q.dir, lambda d: atom(base, 0 if d == "src" else 2))

        v4_base = ir.plus(self.ipv4_header_len(), Num(self.linkpl))
        v4 = ir.any_of(
            [
                ir.And(
                    ir.And(self.cmp_at(self.linkpl + 9, 1, TRANSPORT[p][0]), self.ipfrag()),
                    side(v4_base),
                )
                for p in protos
            ]
        )
        v6 = ir.any_of(
            [
                ir.And(
                    self.cmp_at(self.linkpl + 6, 1, TRANSPORT[p][0]), side(Num(self.linkpl + 40))
                )
                for p in protos
            ]
        )
        code = ir.Or(ir.And(self.ethertype(ETH_IP), v4), ir.And(self.ethertype(ETH_IP6), v6))
        if q.proto in ("udp", "sctp"):
            return self.never(code, f"'{q.proto} {kind}'", q.start or t)
        return code

    def proto(self, q: Quals, v: int, t: Token) -> Bool:
        """gen_proto: ``ip proto 6``, ``ip6 proto 6``, ``proto 6``, ``ether proto 0x800``."""
        if q.dir is not None:
            raise self.error("direction applied to 'proto'", t)
        if q.proto == "link":
            if v <= ETHERMTU:
                return self.llc_sap(v, q.start or t)
            code = self.ethertype(v)
            if v in _SNAP_OUIS:  # EtherTalk: Ethernet II, or 802.3 with this SNAP header
                code = ir.Or(ir.And(self.is_8023(), self.snap(_SNAP_OUIS[v], v)), code)
            shown = f"'ether proto {v:#06x}'"
            return code if v in _TCP_ETHERTYPES else self.never(code, shown, q.start or t)
        if q.proto in (None, "ip", "ip6"):
            version = {None: "any", "ip": "ip", "ip6": "ip6"}[q.proto]
            code = self.ip_proto(v, version)
            ok = (v == 6 and q.proto != "ip6") or (v in _TCP_NEXT6 and q.proto != "ip")
            shown = f"{q.proto or ''} proto {v}".strip()
            return code if ok else self.never(code, f"'{shown}'", q.start or t)
        raise self.error(f"'{q.proto} proto' is bogus", t)

    def protochain(self, q: Quals, v: int, t: Token) -> Bool:
        """gen_protochain: ``ip protochain N``, ``ip6 protochain N``, ``protochain N`` (both).
        After the IPv4 protocol, AH headers are walked; after the IPv6 next header, hop-by-hop,
        destination options, routing, fragment (whatever its offset) and AH headers."""
        if q.proto not in (None, "ip", "ip6"):
            raise self.error("bad protocol applied for 'protochain'", t)
        v4 = ir.And(self.ethertype(ETH_IP), ir.ProtoChain(v, False, self.linkpl))
        v6 = ir.And(self.ethertype(ETH_IP6), ir.ProtoChain(v, True, self.linkpl))
        if v != 6:  # an IPv4 TCP frame's chain ends at once, at 6
            v4 = self.never(v4, f"'ip protochain {v}'", q.start or t)
        return {None: ir.Or(v4, v6), "ip": v4, "ip6": v6}[q.proto]

    def is_8023(self) -> Bool:
        """The EtherType field holds at most 1500: an 802.3 frame's length, an LLC header next."""
        return Not(Cmp("gt", Load(Num(self.linktype), 2), Num(ETHERMTU)))

    def snap(self, oui: int, ethertype: int) -> Bool:
        """gen_snap: the 802.2 LLC header AA AA 03 and a SNAP header of ``oui`` and
        ``ethertype``, compared as libpcap compares them, the last four bytes first."""
        llc = self.linkpl
        return ir.And(
            self.cmp_at(llc + 4, 4, (oui & 0xFFFF) << 16 | ethertype),
            self.cmp_at(llc, 4, 0xAAAA0300 | oui >> 16),
        )

    def llc_sap(self, sap: int, t: Token) -> Bool:
        """``ether proto N`` for N <= 1500, gen_ether_linktype's 802.3 branch: no EtherType is
        that small (the field is then an 802.3 frame's length), so N names the SAP of the 802.2
        LLC header that follows. Never a TCP frame (after a ``vlan``, only where the frame
        has the tag: ``ir.never_on_tcp``)."""
        is_8023 = self.is_8023()
        llc = self.linkpl
        if sap in (LLCSAP_IP, LLCSAP_ISONS, LLCSAP_NETBEUI):  # these come with DSAP = SSAP
            code = ir.And(is_8023, self.cmp_at(llc, 2, sap << 8 | sap))
        elif sap == LLCSAP_IPX:  # Ethernet II, SNAP, DSAP 0xe0, or Novell's raw 802.3 (0xffff)
            snap = self.snap(0, ETH_IPX)
            llc_ipx = ir.Or(snap, self.cmp_at(llc, 1, sap), self.cmp_at(llc, 2, 0xFFFF))
            code = ir.Or(self.ethertype(ETH_IPX), ir.And(is_8023, llc_ipx))
        else:  # the DSAP only; one byte, so N > 255 is never equal
            code = ir.And(is_8023, self.cmp_at(llc, 1, sap))
        return self.never(code, f"'ether proto {sap}' (802.3 frames with LLC SAP {sap})", t)
