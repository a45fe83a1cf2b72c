"""Write the bash completion of xdptcp or pybpf from the argparse parser that ``--help`` prints.

    python .ci/dist/completion.py {xdptcp,pybpf} [-o FILE]

Options and sub-commands come from the parser, so completion cannot drift from ``--help``. What
an option's argument completes to is decided by its metavar: IFACE -> the interfaces in
/sys/class/net, FILE/OBJ -> file names, DIR -> directories, choices -> the choices; any other
argument (a number, a size) completes to nothing. A positional ``object`` completes to files.
The script uses only bash builtins: it works without the bash-completion package's helpers.
"""

from __future__ import annotations

import argparse
import sys

from manpage import parser_of, write_main

HEAD = """\
# bash completion for {name}(8): generated from {name}.cli.build_parser() by .ci/dist/completion.py
"""

# What each kind of argument completes to (cur holds the word being completed).
KINDS = {
    "iface": 'COMPREPLY=($(compgen -W "$(command ls /sys/class/net 2>/dev/null)" -- "$cur"))',
    "file": 'compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur"))',
    "dir": 'compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur"))',
    "none": "COMPREPLY=()",
}
METAVARS = {"IFACE": "iface", "FILE": "file", "OBJ": "file", "DIR": "dir"}
POSITIONALS = {"object": "file"}


def kind_of(action: argparse.Action) -> str:
    if action.choices:
        words = " ".join(str(c) for c in action.choices)
        return f'COMPREPLY=($(compgen -W "{words}" -- "$cur"))'
    return KINDS[METAVARS.get(action.metavar or "", "none")]


def option_cases(parser: argparse.ArgumentParser, indent: str) -> list[str]:
    """``case $prev in -i|--interface) ...`` for the options that take an argument."""
    out = []
    for action in parser._actions:
        if action.option_strings and action.nargs != 0:
            out.append(f"{indent}{'|'.join(action.option_strings)}) {kind_of(action)}; return ;;")
    return out


def options_of(parser: argparse.ArgumentParser) -> str:
    return " ".join(o for a in parser._actions for o in a.option_strings)


def takes_value(subs: argparse._SubParsersAction) -> str:
    """A case pattern for ``$cmd:$word`` when word is an option whose next word is its argument."""
    return "|".join(
        f"{name}:{opt}"
        for name, sub in subs.choices.items()
        for a in sub._actions
        if a.option_strings and a.nargs != 0
        for opt in a.option_strings
    )


def positional_kinds(parser: argparse.ArgumentParser) -> list[str]:
    return [
        KINDS[POSITIONALS.get(a.dest, "none")]
        for a in parser._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
    ]


PRELUDE = """\
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    # "--opt=value": bash splits at '=', so the option is the word before it
    if [[ $cur == = ]]; then cur=""; fi
    if [[ $prev == = && $COMP_CWORD -ge 2 ]]; then prev=${COMP_WORDS[COMP_CWORD-2]}; fi
"""


def simple(name: str, parser: argparse.ArgumentParser) -> str:
    """A command without sub-commands: options, their arguments, then the positionals."""
    lines = [HEAD.format(name=name), f"_{name}() {{", PRELUDE.rstrip("\n"), "    case $prev in"]
    lines += option_cases(parser, "        ")
    lines += [
        "    esac",
        f'    COMPREPLY=($(compgen -W "{options_of(parser)}" -- "$cur"))',
        "}",
        f"complete -F _{name} {name}",
    ]
    return "\n".join(lines) + "\n"


def with_subcommands(name: str, parser: argparse.ArgumentParser) -> str:
    """``pybpf COMMAND ...``: the command first, then each command's options and positionals."""
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    func = f"_{name.replace('-', '_')}"
    words = " ".join(subs.choices) + " " + options_of(parser)
    lines = [HEAD.format(name=name), f"{func}() {{", PRELUDE.rstrip("\n")]
    lines += [
        "    local cmd='' npos=0 i word",
        "    # the command, and how many positionals are already given after it",
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        "        word=${COMP_WORDS[i]}",
        "        if [[ -z $cmd ]]; then",
        "            case $word in -*) ;; *) cmd=$word ;; esac",
        "            continue",
        "        fi",
        "        case $cmd:$word in",
    ]
    if takes_value(subs):
        lines.append(f"            {takes_value(subs)}) i=$((i + 1)) ;;")
    lines += [
        "            *:-*) ;;",
        "            *) npos=$((npos + 1)) ;;",
        "        esac",
        "    done",
        "    if [[ -z $cmd ]]; then",
        f'        COMPREPLY=($(compgen -W "{words}" -- "$cur"))',
        "        return",
        "    fi",
        "    case $cmd in",
    ]
    for sub_name, sub in subs.choices.items():
        lines.append(f"    {sub_name})")
        cases = option_cases(sub, "            ")
        if cases:
            lines += ["        case $prev in", *cases, "        esac"]
        lines.append(
            f'        if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "{options_of(sub)}" '
            '-- "$cur")); return; fi'
        )
        kinds = positional_kinds(sub)
        if kinds:
            lines.append("        case $npos in")
            for n, kind in enumerate(kinds):
                lines.append(f"            {n}) {kind} ;;")
            lines.append("        esac")
        lines.append("        ;;")
    lines += ["    esac", "}", f"complete -F {func} {name}"]
    return "\n".join(lines) + "\n"


def script(name: str) -> str:
    parser = parser_of(name)
    if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
        return with_subcommands(name, parser)
    return simple(name, parser)


if __name__ == "__main__":
    sys.exit(write_main(__doc__, ["pybpf", "xdptcp"], script))
