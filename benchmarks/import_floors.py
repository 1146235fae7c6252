"""Import floors of ``src/featherface``: the longest chain of imports between its top-level components.

A component is a top-level module or subpackage (``featherface._engines``, ``featherface.pipeline``,
...); ``featherface.train`` and the package ``__init__`` (whose lazy names are strings, not imports) are
left out. Imports inside functions count (they run, later); imports under ``if TYPE_CHECKING:`` do not.
Components that import each other (a cycle) count as one floor. The graph is grimp's, the library
behind import-linter (the dev extra)::

    python benchmarks/import_floors.py            # this checkout's src/
    python benchmarks/import_floors.py OTHER/src  # e.g. an older commit: git archive COMMIT src | tar -x -C OTHER
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _component(module: str) -> str:
    return ".".join(module.split(".")[:2])


def import_floors(src: Path) -> dict[str, object]:
    """``{"components": int, "floors": int, "chain": [component, ...], "cycles": [[component, ...], ...]}``."""
    import grimp

    sys.path.insert(0, str(src))
    try:
        graph = grimp.build_graph("featherface", exclude_type_checking_imports=True, cache_dir=None)
    finally:
        sys.path.remove(str(src))

    def counted(module: str) -> bool:
        return module != "featherface" and not module.startswith("featherface.train")

    nodes = {_component(m) for m in graph.modules if counted(m)}
    adj: dict[str, set[str]] = {n: set() for n in nodes}
    for m in filter(counted, graph.modules):
        for t in filter(counted, graph.find_modules_directly_imported_by(m)):
            if _component(m) != _component(t):
                adj[_component(m)].add(_component(t))

    def reachable(n: str) -> set[str]:
        seen, stack = set(), [n]
        while stack:
            for y in adj[stack.pop()] - seen:
                seen.add(y)
                stack.append(y)
        return seen

    reach = {n: reachable(n) for n in nodes}
    scc = {n: frozenset({m for m in nodes if m == n or (m in reach[n] and n in reach[m])}) for n in nodes}
    below: dict[frozenset[str], set[frozenset[str]]] = {s: set() for s in scc.values()}
    for a in nodes:
        below[scc[a]] |= {scc[b] for b in adj[a] if scc[b] != scc[a]}

    @functools.cache
    def depth(s: frozenset[str]) -> int:
        return 1 + max((depth(t) for t in below[s]), default=0)

    top = max(below, key=lambda s: (depth(s), sorted(s)))
    chain, s = [], top
    while True:
        chain.append(" | ".join(sorted(s)))
        lower = sorted((t for t in below[s] if depth(t) == depth(s) - 1), key=sorted)
        if not lower:
            break
        s = lower[0]
    return {"components": len(nodes), "floors": depth(top), "chain": chain,
            "cycles": sorted(sorted(c) for c in set(scc.values()) if len(c) > 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="?", default=str(ROOT / "src"), help="a folder holding the featherface package")
    print(json.dumps(import_floors(Path(ap.parse_args(argv).src).resolve()), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
