"""``ArgumentParser``: argparse's, with usage mistakes in one line and without importing
``shutil`` to learn the terminal's width.

argparse makes a help formatter at every ``add_argument`` (to check the metavar), and each asks
``shutil.get_terminal_size()``; importing ``shutil`` (with ``bz2``, ``lzma``, ``fnmatch``) is
about 2 ms of a command that runs for 100. The width is found here the way ``shutil`` finds it:
``$COLUMNS`` if it is a positive number, else the terminal on standard output, else 80.
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, NoReturn, Optional


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns


class HelpFormatter(argparse.HelpFormatter):
    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: Optional[int] = None,
    ) -> None:
        if width is None:
            width = terminal_columns() - 2  # as argparse does with shutil's answer
        super().__init__(prog, indent_increment, max_help_position, width)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with ``HelpFormatter`` as its default formatter (its
    subcommands' parsers are of this class too), whose usage errors are one line.

    argparse prints the whole usage block before its message (``-c abc``: "invalid int value"
    under a dozen lines of options); a command whose other mistakes are one line on standard
    error says this one the same way, and points at ``--help`` for the rest. ``error_prefix``
    is what comes between the program's name and the message: ``"error: "`` (argparse's) or
    ``""`` for a command whose own messages are ``prog: message``."""

    def __init__(self, *args: Any, error_prefix: str = "error: ", **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.error_prefix = error_prefix

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {self.error_prefix}{message} (see {self.prog} --help)\n")
