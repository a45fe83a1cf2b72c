"""The cyclic garbage collector, paused while a command starts.

Starting a command makes objects and keeps them: the modules it imports, an object's spec, its
instructions and types. None of it is garbage, but the collector walks it again and again as it
grows (some 40 collections in ``pybpf load``, 4-8 ms of a 60-90 ms process). A command's entry
point (``pybpf.entry``, and a tool's own built on pybpf) pauses the collector first; a command
that goes on after its start (``pybpf run``) calls ``resume`` once started: what exists then is
frozen out of the collector's reach (``gc.freeze``), and collection runs as usual for what comes
next. A command that ends after its start never resumes it: the process ends first.

A program that imports pybpf as a library is not touched: ``resume`` does nothing unless
``pause`` stopped a running collector.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Stop the collector, if it runs, until ``resume``."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Freeze what the start made and run the collector again, if ``pause`` stopped it."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
