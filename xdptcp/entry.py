"""The ``xdptcp`` command as a process: what the console script, ``python -m xdptcp``, the
zipapp and the .deb's wrapper call.

The command line and what it imports are imported here, inside the guard: a Ctrl-C in the tens
of milliseconds Python takes to load them ends the process as a Ctrl-C at any later moment does
(quietly, status 0, as ``tcpdump``), rather than with a traceback from the middle of an import.
"""

from __future__ import annotations


def main() -> int:
    try:
        from pybpf.gcpause import pause

        pause()  # until the command has started (pybpf.gcpause)
        from xdptcp.cli import main as command
    except KeyboardInterrupt:
        return 0  # xdptcp.options.EXIT_OK, which is not imported yet
    return command()
