"""An older kernel played in-process: the answers pybpf would get from one, for the tests of
what it then tells the user (the feature probes themselves are forced with ``features.assume``)."""

from __future__ import annotations

import errno

import pytest

from pybpf.errors import SyscallError
from pybpf.sys import mapcmd


def refuse_map_type(monkeypatch: pytest.MonkeyPatch, map_type: int) -> None:
    """From now on in this test, BPF_MAP_CREATE answers EINVAL for ``map_type``, as a kernel
    older than the type does; maps of other types are created for real."""
    real = mapcmd.map_create

    def older_kernel(type_: int, *args: object, **kw: object) -> int:
        if type_ == map_type:
            raise SyscallError("cannot create map", errno.EINVAL)
        return real(type_, *args, **kw)

    monkeypatch.setattr(mapcmd, "map_create", older_kernel)
