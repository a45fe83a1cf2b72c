"""Write the man page of xdptcp(8) or pybpf(8) from the argparse parser that ``--help`` prints.

    python .ci/dist/manpage.py {xdptcp,pybpf} [-o FILE]

Synopsis, description, every option and every sub-command come from the parser itself, so the
page cannot drift from ``--help``; only the sections argparse has no place for (examples, exit
status, see also) are written here. Dashes are written ``\\-`` so that an option copied from the
page is typed with the ASCII minus the shell needs.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import time
from pathlib import Path
from typing import Callable

from common import ROOT, source_date_epoch, version

EXTRA = {
    "xdptcp": {
        "DESCRIPTION": "Its BPF programs parse Ethernet (with VLAN tags), IPv4, IPv6 and TCP "
        "headers of the packets that arrive (at XDP) and leave (at tc egress; see -Q), run the "
        "filter in the kernel, and send each matching packet's headers through a ring buffer. "
        "xdptcp prints them as tcpdump -nn would, one JSON object per packet (--json), or "
        "writes a capture file (-w). At the end it prints how many packets were captured, seen "
        "by the filter, and dropped because the ring buffer was full.",
        "EXAMPLES": [
            ("Print the TCP handshakes reaching eth0 for port 443:",
             "xdptcp -i eth0 'tcp[tcpflags] & tcp-syn != 0 and port 443'"),
            ("Write a pcap file for Wireshark, with a line of counts every second:",
             "xdptcp -i eth0 -w capture.pcap --stats"),
            ("One JSON object per packet, 100 packets:", "xdptcp -i eth0 --json -c 100"),
            ("Read a pcap file, with a filter:", "xdptcp -r capture.pcap port 22"),
            ("Capture a short conversation between two throw-away test hosts:", "xdptcp --demo"),
        ],
        "EXIT STATUS": "0 on success, 1 when the capture could not be set up or failed, "
        "2 for a bad command line.",
        "NOTES": "A live capture needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, and "
        "Linux 5.8 or later with BTF. The XDP program is attached to each interface with "
        "rtnetlink (or a bpf_link with --link), the egress one with tcx or a clsact filter "
        "(--tc), and both are detached on every exit; --detach removes an xdptcp program "
        "left on an interface by a killed run.",
        "SEE ALSO": "tcpdump(8), pcap-filter(7), pybpf(8), ip-link(8)",
    },
    "pybpf": {
        "DESCRIPTION": "pybpf reads a BPF object built by clang (ELF with BTF) and shows each "
        "stage of loading it, or loads it: its sections, programs, maps and relocations "
        "(inspect), its programs after linking (disasm), the maps and programs created in the "
        "kernel (load), and one run of a program on given data (test-run). Reading an object "
        "needs no privileges; loading needs root or CAP_BPF.",
        "EXAMPLES": [
            ("What an object holds:", "pybpf inspect prog.bpf.o"),
            ("Its programs after linking, with source lines:", "pybpf disasm prog.bpf.o"),
            ("Load it, showing each step, and pin its programs:",
             "pybpf load -v --pin /sys/fs/bpf/prog prog.bpf.o"),
        ],
        "EXIT STATUS": "0 on success, 1 when the object cannot be read or loaded, "
        "2 for a bad command line.",
        "SEE ALSO": "bpftool(8), bpf(2), xdptcp(8)",
    },
}  # fmt: skip


def roff(text: str) -> str:
    """Text that roff prints as it is: backslashes, minus signs, no line read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line[:1] in ".'" else line for line in text.splitlines())


def parser_of(name: str) -> argparse.ArgumentParser:
    sys.path.insert(0, str(ROOT))
    cli = importlib.import_module(f"{name}.cli")
    return cli.build_parser()


def synopsis(parser: argparse.ArgumentParser) -> str:
    """The usage line argparse prints, with options bold and their arguments italic."""
    usage = " ".join(parser.format_usage().split()).removeprefix("usage: ")
    prog, rest = parser.prog, usage[len(parser.prog) :]
    out = []
    for word in re.split(r"([\s\[\]|(){}]+)", rest):
        if word.startswith("-"):
            out.append("\\fB" + roff(word) + "\\fR")
        elif word[:1].isalpha():
            out.append("\\fI" + roff(word) + "\\fR")
        else:
            out.append(roff(word))
    return f'.B "{prog}"\n' + "".join(out).strip()


def invocation(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """``-i IFACE, --interface IFACE`` as --help shows it, in fonts."""
    fmt = parser._get_formatter()  # argparse's own formatter: the metavar it would print
    if not action.option_strings:
        return "\\fI" + roff(fmt._format_action_invocation(action)) + "\\fR"
    args = ""
    if action.nargs != 0:
        args = " \\fI" + roff(fmt._format_args(action, action.dest.upper())) + "\\fR"
    return ", ".join(f"\\fB{roff(opt)}\\fR{args}" for opt in action.option_strings)


def options(parser: argparse.ArgumentParser) -> list[str]:
    fmt = parser._get_formatter()
    out = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        out += [".TP", invocation(parser, action)]
        if action.help:
            out.append(roff(fmt._expand_help(action)))
    return out


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        for name, sub in action.choices.items():
            out += [f".SS {name}", synopsis(sub), ".PP", roff(helps.get(name) or "")]
            out += options(sub)
    return out


def page(name: str) -> str:
    parser = parser_of(name)
    extra = EXTRA[name]
    date = time.strftime("%Y-%m-%d", time.gmtime(source_date_epoch()))
    summary = (parser.description or "").rstrip(".")
    first = summary.split(" ", 1)[0]
    if first[1:].islower() or len(first) == 1:  # "Capture ..." -> "capture ...", "XDP ..." stays
        summary = summary[:1].lower() + summary[1:]
    lines = [
        f'.\\" {name}(8): generated from {name}.cli.build_parser() by .ci/dist/manpage.py',
        f'.TH {name.upper()} 8 "{date}" "pybpf {version()}" "System Administration"',
        ".nh",  # option names must not be hyphenated
        ".ad l",
        ".SH NAME",
        f"{name} \\- {roff(summary)}",
        ".SH SYNOPSIS",
        synopsis(parser),
        ".SH DESCRIPTION",
        roff(parser.description or ""),
        *([".PP", roff(extra["DESCRIPTION"])] if "DESCRIPTION" in extra else []),
        ".SH OPTIONS",
        *options(parser),
    ]
    subs = subcommands(parser)
    if subs:
        lines += [".SH COMMANDS", *subs]
    for section in ("EXAMPLES", "EXIT STATUS", "NOTES", "SEE ALSO"):
        if section not in extra:
            continue
        lines.append(f'.SH "{section}"' if " " in section else f".SH {section}")
        if section == "EXAMPLES":
            for text, command in extra[section]:
                lines += [".PP", roff(text), ".PP", ".RS 4", f"\\fB{roff(command)}\\fR", ".RE"]
        elif section == "SEE ALSO":
            refs = [r.strip() for r in extra[section].split(",")]
            pages = [re.fullmatch(r"(.*)\((\d)\)", r).groups() for r in refs]
            lines.append(",\n".join(f".BR {roff(ref)} ({sec})" for ref, sec in pages))
        else:
            lines.append(roff(extra[section]))
    return "\n".join(lines) + "\n"


def write_main(doc: str, names: list[str], render: Callable[[str], str]) -> int:
    """The command line both generators share: NAME [-o FILE], the text of ``render(NAME)``."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("name", choices=names)
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    args = p.parse_args()
    text = render(args.name)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(write_main(__doc__, sorted(EXTRA), page))
