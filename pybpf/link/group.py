"""Several links that make one attachment (a perf_event program on every CPU, a uprobe on every
match): closed together, in reverse order."""

from __future__ import annotations

from typing import Iterator

from pybpf.sys.fd import FDObject


class LinkGroup:
    """A list of fd-owning links, closed together. Use as a context manager."""

    def __init__(self, links: list[FDObject] | None = None):
        self.links: list[FDObject] = list(links or [])
        self._held: list[FDObject] = []

    def hold(self, obj: FDObject) -> None:
        """Keep another fd-owning object (a map the links need) until the group is closed."""
        self._held.append(obj)

    def append(self, link: FDObject) -> None:
        self.links.append(link)

    def __iter__(self) -> Iterator[FDObject]:
        return iter(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def __getitem__(self, i: int) -> FDObject:
        return self.links[i]

    def __repr__(self) -> str:
        return f"LinkGroup({self.links!r})"

    @property
    def closed(self) -> bool:
        return all(link.closed for link in self.links)

    def close(self) -> None:
        for obj in [*reversed(self.links), *reversed(self._held)]:
            obj.close()

    def __enter__(self) -> LinkGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
