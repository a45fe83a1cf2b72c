"""The start of a live capture, side by side (``xdptcp.capture.Capture``): what the kernel does
for it without the GIL (making the ring, verifying each program, attaching the egress hooks) runs
in threads while Python goes on with the rest, and the one-after-the-other results are kept:
the same maps, programs, attachments in the same order, notices and errors."""

from __future__ import annotations

import sys
import threading

from pybpf.errors import BPFError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

SWITCH_INTERVAL = 0.0005  # seconds


class EarlyRing:
    """A ring buffer map made in a thread (``Capture.__init__``); ``result()`` waits for it:
    the Map, or None if the kernel refused it (the loader then tries, and explains)."""

    def __init__(self, size: int, name: str) -> None:
        from pybpf.maps import Map

        # Until the capture is open, threads hand the GIL over within half a millisecond
        # rather than CPython's 5: a thread back from the kernel (the ring made, a program
        # verified, the tc program to attach) goes on at once, not when the other is done.
        self.switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self.switch, SWITCH_INTERVAL))
        self.map = None
        args = (Map, size, name)
        self.thread = threading.Thread(target=self._run, args=args, name="xdptcp-ring")
        self.thread.start()

    def _run(self, map_cls, size: int, name: str) -> None:
        from pybpf.sys.uapi import MapType

        try:
            self.map = map_cls.create(MapType.RINGBUF, 0, 0, size, name=name)
        except BPFError:
            pass

    def result(self):
        interrupted = False
        while self.thread.is_alive():
            try:
                self.thread.join()
            except KeyboardInterrupt:  # it is making the map: wait, so that it can be closed
                interrupted = True
        if interrupted:
            raise KeyboardInterrupt
        return self.map

    def close(self) -> None:
        """Close the map (the loaded object holds its own fd of it), restore the switch
        interval."""
        try:
            if self.result() is not None:
                self.map.close()
                self.map = None
        finally:
            sys.setswitchinterval(self.switch)


class EgressSide:
    """The tc program's side of ``Capture._open_side_by_side``: the program is linked in the
    caller's thread and verified in one of its own; a thread asks what the hooks need to know
    meanwhile (which interfaces get one, whether tcx exists: questions only, nothing on the host
    changes), then waits for the program and attaches it on each interface's egress hook. Its
    notices and attachments are handed over by ``finish`` (which waits for it, Ctrl-C or not,
    so nothing it attached is left behind)."""

    def __init__(self, cap, program: str) -> None:
        self.cap = cap  # an xdptcp.capture.Capture
        self.attachments: list = []
        self.notices: list[str] = []
        self.error: Optional[BaseException] = None
        self.thread = None
        self.load = None
        # Set once the thread has its answers and the program, as it starts to attach: until
        # then the caller keeps its own Python (prepare) off the GIL this thread needs.
        self.attaching = threading.Event()
        if cap.direction != "in":
            self.load = cap.obj.load_program(program, wait=False)

    def start(self) -> None:
        if self.load is not None:
            self.thread = threading.Thread(target=self._run, name="xdptcp-egress")
            self.thread.start()

    def _run(self) -> None:
        try:
            cap = self.cap
            wanted = [i for i in cap.interfaces if cap._egress_wanted(i)]
            if wanted and cap.tc_mode == "auto":
                from pybpf.link import tc

                tc.tcx_supported()  # probed once, before the program is ready
            self.load.result()
            self.attaching.set()
            for iface in wanted:
                # (whether the device segments GSO packets is asked once attached: the ioctl
                # waits for RTNL, which the XDP attach may hold for a grace period by then)
                att = cap._attach_egress(iface, self.notices.append)
                if att is not None:
                    self.attachments.append(att)
        except BaseException as e:  # raised in the main thread by raise_error()
            self.error = e
        finally:
            self.attaching.set()

    def wait_attaching(self) -> None:
        """Wait until the thread attaches (or is done): the tcx link waits for an RCU grace
        period under RTNL, which the XDP attach then waits for too, so it must start as early
        as it can; the caller's own Python (the sink) runs during that grace period."""
        if self.thread is not None:
            self.attaching.wait()

    def finish(self) -> None:
        """Wait for the thread; its attachments join the capture's after the XDP ones of the
        same interface, as when attached one after the other."""
        while self.thread is not None and self.thread.is_alive():
            try:
                self.thread.join()
            except KeyboardInterrupt:
                continue  # it is attaching: wait, so that close() can detach it
        cap, order = self.cap, {id(i): n for n, i in enumerate(self.cap.interfaces)}
        cap.attachments += self.attachments
        cap.attachments.sort(key=lambda a: (order[id(a.iface)], a.egress))
        self.attachments = []
        for msg in self.notices:
            cap.notice(msg)
        self.notices = []

    def raise_error(self) -> None:
        if self.error is not None:
            e, self.error = self.error, None
            raise e
