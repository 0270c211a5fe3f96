"""The layout is the architecture: each layer imports only from the layers below it, and no import goes round in a circle.

Layers, lowest first: the records, configuration and file helpers; ingestion (files → documents,
which takes nothing from ``kb`` but the records) and the embedding model; the vocabulary; the
stores; indexing and checking; search and answers; the knowledge-base facade; evaluation; adapting
the model (which evaluates); the command line and app helpers; the Streamlit app. Every import counts, at the top of a module or
inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

from kb.config import PROJECT_ROOT

LAYERS = [
    ("kb.records", "kb.config", "kb.files"),
    ("ingest", "kb.embed"),
    ("kb.vocab",),
    ("kb.stores",),
    ("kb.index", "kb.check"),
    ("kb.search",),
    ("kb.knowledge",),
    ("kb.evals",),
    ("kb.adapt",),
    ("kb.ui",),
    ("app",),
]
# What ingestion may take from the knowledge base: the records it produces, nothing else.
INGEST_MAY_USE = ("kb.records",)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    for n, prefixes in enumerate(LAYERS):
        if any(_within(module, p) for p in prefixes):
            return n
    return None


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of ours in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(root, path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(root, path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base]) if base else ".".join(up)
            found.append((node.lineno, base))
            # `from kb import views` imports the module kb.views
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, m) for line, m in found if layer_of(m) is not None]


def sources(root: Path) -> list[Path]:
    return sorted([*(root / "kb").rglob("*.py"), *(root / "ingest").rglob("*.py"), *root.glob("app.py")])


def layer_violations(root: Path) -> list[str]:
    """Every import that runs against the layers, as ``file:line: module imports name (why)``."""
    problems = []
    for path in sources(root):
        here = module_name(root, path)
        mine = layer_of(here)
        for line, name in imports(root, path):
            theirs = layer_of(name)
            where = f"{path.relative_to(root)}:{line}: {here} imports {name}"
            if _within(here, "ingest") and _within(name, "kb") and not any(_within(name, m) for m in INGEST_MAY_USE):
                problems.append(f"{where} (ingestion takes only {', '.join(INGEST_MAY_USE)} from kb)")
            elif theirs > mine:
                problems.append(f"{where} (a lower layer may not import a higher one)")
    return problems


def import_cycles(root: Path) -> list[list[str]]:
    """Circles of modules importing each other (through any import, at the top or in a function)."""
    names = {module_name(root, p): p for p in sources(root)}
    graph = {m: sorted({n for _, n in imports(root, p) if n in names and n != m}) for m, p in names.items()}
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                cycles.append(sorted(component))

    for m in graph:
        if m not in index:
            visit(m)
    return cycles


def test_every_import_respects_the_layers():
    problems = layer_violations(PROJECT_ROOT)
    assert problems == [], "\n".join(problems)


def test_no_modules_import_each_other_in_a_circle():
    assert import_cycles(PROJECT_ROOT) == []


def test_every_module_has_a_layer():
    unplaced = [module_name(PROJECT_ROOT, p) for p in sources(PROJECT_ROOT) if layer_of(module_name(PROJECT_ROOT, p)) is None]
    assert unplaced == ["kb"]  # the empty package itself


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_check_names_the_file_line_and_import_that_break_the_layers(tmp_path):
    write(tmp_path, "kb/__init__.py", "")
    write(tmp_path, "kb/records.py", "")
    write(tmp_path, "kb/stores/__init__.py", "")
    write(tmp_path, "kb/search/__init__.py", "")
    write(tmp_path, "kb/search/answer.py", "from kb.stores import vectors\n")
    write(tmp_path, "kb/stores/vectors.py", "import json\n\n\ndef f():\n    from kb.search.answer import Answerer\n")
    write(tmp_path, "ingest/__init__.py", "")
    write(tmp_path, "ingest/read.py", "from kb.records import Document\nfrom kb.stores.vectors import f\n")
    assert layer_violations(tmp_path) == [
        "ingest/read.py:2: ingest.read imports kb.stores.vectors (ingestion takes only kb.records from kb)",
        "ingest/read.py:2: ingest.read imports kb.stores.vectors.f (ingestion takes only kb.records from kb)",
        "kb/stores/vectors.py:5: kb.stores.vectors imports kb.search.answer (a lower layer may not import a higher one)",
        "kb/stores/vectors.py:5: kb.stores.vectors imports kb.search.answer.Answerer (a lower layer may not import a higher one)",
    ]
    assert import_cycles(tmp_path) == [["kb.search.answer", "kb.stores.vectors"]]
