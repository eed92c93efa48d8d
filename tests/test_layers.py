"""The layers of docs/architecture.md, kept by the import graph.

The graph is read with `ast` from the source: module-level and function-local imports both count
(a function-local import is still a dependency, only a later one); imports under
`if TYPE_CHECKING:` do not (they never run).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "smswatch"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        else:
            yield from _imports(node)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def graph() -> dict[str, set[str]]:
    """Each module of ours and the modules of ours it imports (a `from package import name`
    counts as the submodule `package.name` when there is one, else as the package)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif node.level:  # relative: resolved against this module's package
                base = name.split(".")[: -node.level + (path.name == "__init__.py")]
                found = [".".join([*base, *(node.module or "").split(".")]).strip(".")]
                found += [f"{found[0]}.{alias.name}" for alias in node.names]
            else:
                found = [node.module or ""]
                found += [f"{node.module}.{alias.name}" for alias in node.names]
            for target in found:
                if target in known and target != name:
                    targets.add(target)
        edges[name] = targets
    return edges


def circles(within: set[str]) -> list[list[str]]:
    """The strongly connected components of two or more modules among `within` (Tarjan)."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v] & within:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(within):
        if v not in index:
            visit(v)
    return found


def under(*prefixes: str) -> set[str]:
    return {m for m in modules() if any(m == p or m.startswith(p + ".") for p in prefixes)}


def test_the_graph_sees_imports() -> None:
    """The reader of the graph finds the dependencies it must (a check of the check)."""
    edges = graph()
    assert "smswatch.ingest.webhooks" in edges["smswatch.live.engine"]
    assert "smswatch.tui.app" in edges["smswatch.live.monitor"]
    # a function-local import counts too
    assert "smswatch.live.serve" in edges["smswatch.cli"] | edges.get("smswatch.cli.serve", set())


def test_no_import_circles_outside_the_tui() -> None:
    assert circles(set(modules()) - under("smswatch.tui")) == []


def test_core_imports_nothing_of_ours_but_itself_and_timefmt() -> None:
    allowed = under("smswatch.core") | {"smswatch", "smswatch.timefmt"}
    wrong = {m: sorted(graph()[m] - allowed) for m in under("smswatch.core")}
    assert {m: w for m, w in wrong.items() if w} == {}


def test_source_imports_core_only() -> None:
    allowed = under("smswatch.core", "smswatch.source") | {"smswatch", "smswatch.timefmt"}
    wrong = {m: sorted(graph()[m] - allowed) for m in under("smswatch.source")}
    assert {m: w for m, w in wrong.items() if w} == {}


def test_the_tui_reaches_no_ingest_store_live_or_gateway_internals() -> None:
    forbidden = under("smswatch.ingest", "smswatch.store", "smswatch.live") | (
        # The error catalogue explains every gateway's codes: it is the gateways' public face.
        under("smswatch.gateways")
        - {"smswatch.gateways", "smswatch.gateways.registry", "smswatch.gateways.catalogue"}
    )
    wrong = {m: sorted(graph()[m] & forbidden) for m in under("smswatch.tui")}
    assert {m: w for m, w in wrong.items() if w} == {}


def test_only_the_store_knows_which_back_end() -> None:
    """`is_url` (SQLite path or PostgreSQL URL) is asked inside store/ alone."""
    outside = {
        m: p
        for m, p in modules().items()
        if m not in under("smswatch.store") and "is_url" in p.read_text()
    }
    assert sorted(outside) == []


def test_the_attached_monitor_loads_no_server_driver_or_writer() -> None:
    """What `smswatch attach` imports: the TUI app and the feed client, nothing that serves
    HTTP, talks to a database or writes one."""
    heavy = (
        "httptools",
        "aiohttp",
        "asyncpg",
        "aiosqlite",
        "uvloop",
        "smswatch.ingest",
        "smswatch.live.engine",
        "smswatch.store.writer",
        "smswatch.store.sqlite.writer",
        "smswatch.store.postgres",
        # Telnyx's Ed25519: only a listener with a Telnyx key, or a sender signing, needs it.
        "cryptography",
    )
    code = (
        "import sys, smswatch.tui.app, smswatch.feed.client\n"
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_no_module_is_over_800_lines() -> None:
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > 800}
    assert long == {}


def test_at_most_twelve_modules_at_the_top_of_the_package() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top


@pytest.mark.parametrize("prefix", ["smswatch.live", "smswatch.ingest", "smswatch.store"])
def test_the_monitor_app_does_not_import_the_layers_below_the_seam(prefix: str) -> None:
    reach: set[str] = set()
    todo = ["smswatch.tui.app"]
    while todo:
        m = todo.pop()
        for target in graph()[m]:
            if target not in reach:
                reach.add(target)
                todo.append(target)
    assert sorted(m for m in reach if m == prefix or m.startswith(prefix + ".")) == []
