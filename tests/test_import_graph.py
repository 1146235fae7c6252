"""The import graph of ``src/featherface``: no cycles, and the layering rules hold.

Every module under ``src/featherface`` is parsed with :mod:`ast` (nothing is imported) and each of its
imports of a ``featherface`` module becomes an edge, whether the import is at module level or inside a
function (a function-level import still runs, only later). Resolution:

- ``import featherface.a.b`` and ``from featherface.a.b import name``: an edge to ``featherface.a.b``;
  ``from featherface.a import b`` where ``b`` is a submodule: an edge to ``featherface.a.b``. A name
  that is not a submodule (``from featherface import load_model``) is an edge to the package
  (``featherface/__init__.py``), whose lazy ``__getattr__`` targets are strings, not imports.
- Relative imports are resolved against the importing module's package.
- Importing ``a.b.c`` also runs the packages ``a.b`` and ``a``: those are edges too ("implicit"), except
  to a package the importer itself belongs to (already being initialised; a submodule may always use
  its parent package's other submodules).
- Imports under ``if TYPE_CHECKING:`` are skipped (they never run); string targets of
  ``importlib.import_module`` are not imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "featherface"
MAX_CYCLES = 200


@dataclass(frozen=True)
class Import:
    """Where ``source`` imports ``target``: file (relative to the source root), line, whether inside a
    function, whether implicit (a package that importing one of its submodules runs)."""

    source: str
    target: str
    file: str
    line: int
    in_function: bool
    implicit: bool = False

    def where(self) -> str:
        how = ["in a function" if self.in_function else "module level"]
        if self.implicit:
            how.append("package run by importing a submodule")
        return f"{self.file}:{self.line} ({', '.join(how)})"


def find_modules(root: Path, package: str) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of ``package`` under ``root``.

    Where ``x.py`` and the package ``x/`` both exist, the package wins (as for the import system).
    """
    modules: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if name not in modules or path.name == "__init__.py":
            modules[name] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with "inside a function"; ``if TYPE_CHECKING:`` bodies skipped."""

    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
            return
        children: list[ast.AST]
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children = list(node.orelse)
        else:
            children = list(ast.iter_child_nodes(node))
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in children:
            yield from visit(child, inner)

    yield from visit(tree, False)


def _in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The longest prefix of ``name`` that is a module (``a.b.Name`` -> ``a.b``)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def _package_of(module: str, modules: dict[str, Path]) -> list[str]:
    is_package = modules[module].name == "__init__.py"
    parts = module.split(".")
    return parts if is_package else parts[:-1]


def module_imports(module: str, modules: dict[str, Path], root: Path, package: str) -> list[Import]:
    """The imports of package modules made by ``module`` (explicit targets first, then implicit packages)."""
    path = modules[module]
    file = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    explicit: list[tuple[str, ast.stmt, bool]] = []
    for node, in_function in _import_nodes(tree):
        if isinstance(node, ast.Import):
            explicit += [(alias.name, node, in_function) for alias in node.names]
            continue
        if node.level:
            base_parts = _package_of(module, modules)
            if node.level > 1:
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            explicit.append((sub if sub in modules else base, node, in_function))
    out: list[Import] = []
    for name, node, in_function in explicit:
        if not _in_package(name, package):
            continue
        target = _resolve(name, modules)
        if target and target != module:
            out.append(Import(module, target, file, node.lineno, in_function))
        parts = target.split(".")
        for i in range(1, len(parts)):  # the packages that importing ``target`` runs first
            parent = ".".join(parts[:i])
            if parent in modules and parent != module and not module.startswith(parent + "."):
                out.append(Import(module, parent, file, node.lineno, in_function, implicit=True))
    return out


def import_graph(root: Path = SRC, package: str = PACKAGE) -> dict[str, dict[str, Import]]:
    """``{module: {imported module: first import of it}}`` over every module of ``package``."""
    modules = find_modules(root, package)
    graph: dict[str, dict[str, Import]] = {}
    for module in modules:
        edges: dict[str, Import] = {}
        for imp in module_imports(module, modules, root, package):
            old = edges.get(imp.target)
            if old is None or (old.implicit and not imp.implicit):
                edges[imp.target] = imp
        graph[module] = edges
    return graph


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def find_cycles(graph: dict[str, dict[str, Import]], limit: int = MAX_CYCLES) -> list[list[str]]:
    """The elementary cycles ``[a, b, ..., a]`` (each listed once, starting at its smallest name)."""
    cycles: list[list[str]] = []
    for component in strongly_connected(graph):
        nodes = sorted(component)
        if len(nodes) == 1 and nodes[0] not in graph[nodes[0]]:
            continue
        rank = {n: i for i, n in enumerate(nodes)}
        for s in nodes:
            path = [s]
            on_path = {s}
            work = [iter(sorted(t for t in graph[s] if t in component))]
            while work:
                for nxt in work[-1]:
                    if nxt == s:
                        cycles.append([*path, s])
                        if len(cycles) >= limit:
                            return cycles
                    elif rank[nxt] > rank[s] and nxt not in on_path:
                        path.append(nxt)
                        on_path.add(nxt)
                        work.append(iter(sorted(t for t in graph[nxt] if t in component)))
                        break
                else:
                    work.pop()
                    on_path.discard(path.pop())
    return cycles


def describe_cycles(graph: dict[str, dict[str, Import]], cycles: list[list[str]]) -> str:
    lines = [f"{len(cycles)} import cycle(s) among {PACKAGE} modules:"]
    for i, cycle in enumerate(cycles, 1):
        lines.append(f"  {i}. " + " -> ".join(cycle))
        for a, b in zip(cycle, cycle[1:]):
            lines.append(f"       {a} -> {b}: {graph[a][b].where()}")
    return "\n".join(lines)


# -- the checks on src/featherface ------------------------------------------------------------------


def test_the_graph_covers_the_package() -> None:
    graph = import_graph()
    assert {"featherface", "featherface.api", "featherface.fuse", "featherface.models.deform"} <= set(graph)
    assert "featherface.ops" in graph["featherface.fuse"]  # sanity: edges are found


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, describe_cycles(graph, cycles)


def test_nothing_outside_train_imports_train() -> None:
    """``featherface.train`` (training, needs the ``train`` extra) is never imported by the library,
    not even inside a function."""
    bad = [
        f"{imp.source} -> {imp.target}: {imp.where()}"
        for source, edges in import_graph().items()
        if not _in_package(source, "featherface.train")
        for imp in edges.values()
        if _in_package(imp.target, "featherface.train")
    ]
    assert not bad, "modules outside featherface.train import it:\n" + "\n".join(bad)


def test_fuse_imports_nothing_from_models() -> None:
    """``featherface.fuse`` is model-agnostic: the models use its helpers (``fuse()`` methods), never
    the other way round, directly or through another module."""
    graph = import_graph()
    parent: dict[str, str | None] = {"featherface.fuse": None}
    todo = ["featherface.fuse"]
    while todo:
        node = todo.pop()
        for nxt in graph[node]:
            if nxt not in parent:
                parent[nxt] = node
                todo.append(nxt)
    reached = sorted(m for m in parent if _in_package(m, "featherface.models"))
    chains = []
    for m in reached:
        chain: list[str] = [m]
        while (p := parent[chain[-1]]) is not None:
            chain.append(p)
        chains.append(" -> ".join(reversed(chain)))
    assert not chains, "featherface.fuse imports featherface.models:\n" + "\n".join(chains)


# -- the graph builder itself, on a small package --------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_builder_resolution_rules(tmp_path: Path) -> None:
    _write(tmp_path, {
        "pkg/__init__.py": "import importlib\n_LAZY = {'x': 'pkg.a'}\n"
                           "def __getattr__(n):\n    return importlib.import_module(_LAZY[n])\n",
        "pkg/a.py": "import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n"
                    "else:\n    import pkg.e\n"
                    "def f():\n    from . import b\n    return b\n",
        "pkg/b.py": "from pkg.sub.c import thing\nfrom pkg import Name\n",
        "pkg/e.py": "",
        "pkg/sub/__init__.py": "from .c import thing\nfrom . import d\n",
        "pkg/sub/c.py": "from ..e import x\nthing = 1\n",
        "pkg/sub/d.py": "import pkg.sub\nfrom pkg.sub import c\n",
    })
    graph = import_graph(tmp_path, "pkg")
    edges = {m: set(t) for m, t in graph.items()}
    assert edges == {
        "pkg": set(),  # lazy string targets are not imports
        "pkg.a": {"pkg.e", "pkg.b"},  # TYPE_CHECKING body skipped, else branch kept, function-level kept
        "pkg.b": {"pkg.sub.c", "pkg.sub", "pkg"},  # pkg.sub runs first (implicit); a non-module name -> pkg
        "pkg.e": set(),
        "pkg.sub": {"pkg.sub.c", "pkg.sub.d"},
        "pkg.sub.c": {"pkg.e"},
        "pkg.sub.d": {"pkg.sub", "pkg.sub.c"},  # explicit imports of the own package count
    }
    assert graph["pkg.a"]["pkg.b"].in_function and not graph["pkg.a"]["pkg.e"].in_function
    assert graph["pkg.b"]["pkg.sub"].implicit and not graph["pkg.b"]["pkg.sub.c"].implicit
    cycles = find_cycles(graph)
    assert cycles == [["pkg.sub", "pkg.sub.d", "pkg.sub"]]
    text = describe_cycles(graph, cycles)
    assert "pkg.sub -> pkg.sub.d -> pkg.sub" in text and "pkg/sub/d.py:1 (module level)" in text


def test_find_cycles_lists_each_elementary_cycle(tmp_path: Path) -> None:
    _write(tmp_path, {
        "q/__init__.py": "",
        "q/a.py": "from q import b, c\n",
        "q/b.py": "from q import a\n",
        "q/c.py": "from q import b\n",
        "q/d.py": "from q import a\n",
    })
    cycles = find_cycles(import_graph(tmp_path, "q"))
    assert sorted(cycles) == [["q.a", "q.b", "q.a"], ["q.a", "q.c", "q.b", "q.a"]]


def private_uses(root: Path, package: str) -> list[str]:
    """``file:line`` of every place a module of ``package`` uses another module's private member:
    ``from featherface.x import _name`` (``_name`` not a submodule), or ``alias._name`` where ``alias``
    was bound by an import of a ``featherface`` module or name. Private *modules* (``_stream``...) may
    be imported: they are the package's machinery; their members without underscore are its interface."""
    modules = find_modules(root, package)
    found = []
    for path in modules.values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bound: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bound |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith(package)}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package) and not node.level:
                for a in node.names:
                    bound.add(a.asname or a.name)
                    if a.name.startswith("_") and not a.name.startswith("__") and f"{node.module}.{a.name}" not in modules:
                        found.append(f"{path.relative_to(root)}:{node.lineno}: from {node.module} import {a.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in bound):
                qualified = f"{package}.{node.attr}" if node.value.id == package else None
                if qualified in modules:
                    continue  # featherface._stream: a private module, not a private member
                found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_members() -> None:
    """The stages, runners, builder and CLI talk through public names only (issue 13)."""
    uses = private_uses(SRC, PACKAGE)
    assert not uses, "private members used across modules:\n" + "\n".join(uses)


def test_private_use_scan_finds_what_it_should(tmp_path: Path) -> None:
    pkg = tmp_path / "featherface"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_machinery.py").write_text("def run():\n    pass\n\ndef _helper():\n    pass\n")
    (pkg / "a.py").write_text(
        "from featherface import _machinery\nfrom featherface._machinery import _helper\n"
        "import featherface.b as b\n\ndef f():\n    _machinery.run()\n    return b._secret\n"
    )
    (pkg / "b.py").write_text("_secret = 1\n")
    got = private_uses(tmp_path, "featherface")
    assert got == ["featherface/a.py:2: from featherface._machinery import _helper", "featherface/a.py:7: b._secret"]


def test_top_level_names_are_listed_once_and_resolve() -> None:
    """``featherface.__all__`` is what the lazy table serves, every exception type of
    ``featherface.errors`` included, and each name resolves to its defining module's object."""
    import featherface
    import featherface.errors

    assert set(featherface.__all__) == {"__version__", *featherface._LAZY}
    assert set(featherface.errors.__all__) <= set(featherface.__all__)
    for name in featherface.__all__:
        assert getattr(featherface, name) is getattr(__import__(featherface._LAZY.get(name, "featherface"), fromlist=[name]), name)
    assert featherface.WeightsError is featherface.hub.WeightsError is featherface.errors.WeightsError
