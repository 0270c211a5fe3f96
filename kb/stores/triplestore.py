"""Where the knowledge graph's quads live: an Oxigraph store under ``KB_HOME``, or any SPARQL 1.1 server.

Both take the same four calls: a SELECT or ASK query over the union of all graphs (values bound in a
VALUES block, never pasted), an update applied in one transaction, the names of the graphs, and a graph's triples. The
knowledge graph (:mod:`kb.stores.graph`) builds on them and never sees which one it has.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol

import pyoxigraph as ox

Term = ox.NamedNode | ox.Literal


class StoreBusy(RuntimeError):
    """The embedded store stayed held by another process for longer than a reader waits."""


class GraphServerError(RuntimeError):
    """The SPARQL server refused a request or could not be reached."""


class TripleStore(Protocol):
    def select(self, query: str, prefixes: dict[str, str], bindings: dict[str, Term] | None = None) -> dict: ...
    def update(self, request: str) -> None: ...
    def graphs(self) -> set[str]: ...
    def ntriples(self, graph: str) -> str: ...


def _value(term) -> str | None:
    return None if term is None else term.value


def check_query(query: str, prefixes: dict[str, str]) -> str:
    """"select", "ask" or "graph" (CONSTRUCT, DESCRIBE) for a query that parses; SyntaxError otherwise.
    Run on an empty store, so that a remote server is only sent what parses."""
    result = ox.Store().query(query, prefixes=prefixes)
    if isinstance(result, ox.QueryBoolean):
        return "ask"
    return "select" if isinstance(result, ox.QuerySolutions) else "graph"


def _solutions(result) -> dict:
    if isinstance(result, ox.QueryBoolean):
        return {"boolean": bool(result)}
    names = [v.value for v in result.variables]
    return {"vars": names, "rows": [{n: _value(row[n]) for n in names} for row in result]}


def with_values(query: str, bindings: dict[str, Term]) -> str:
    """The query with its bound variables given by a VALUES block at the start of its first group: the
    terms are written in their escaped N-Triples form, so no value can change the query."""
    if not bindings:
        return query
    names = list(bindings)
    block = (" VALUES (" + " ".join(f"?{n}" for n in names) + ") { (" +
             " ".join(str(bindings[n]) for n in names) + ") } ")
    at = query.index("{") + 1
    return query[:at] + block + query[at:]


# -- embedded ---------------------------------------------------------------------------------------------
_HELD: dict[Path, list] = {}  # path -> [store, users]: one open handle per process, shared by its threads
_HELD_LOCK = threading.Lock()


class EmbeddedStore:
    """An Oxigraph (RocksDB) store in a folder. RocksDB lets one process open a store at a time, and a
    read-only open beside a writer is undefined, so each call opens it, works and lets it go: the app and
    a ``kb ingest`` in another process take turns, each waiting at most ``wait`` seconds."""

    def __init__(self, folder: Path, wait: float = 60.0) -> None:
        self.folder = folder
        self.wait = wait

    @contextmanager
    def _open(self) -> Iterator[ox.Store]:
        key = self.folder.resolve()
        with _HELD_LOCK:
            held = _HELD.get(key)
            if held is None:
                held = _HELD[key] = [self._acquire(), 0]
            held[1] += 1
        try:
            yield held[0]
        finally:
            with _HELD_LOCK:
                held[1] -= 1
                if held[1] == 0:
                    del _HELD[key]  # the last reference goes: RocksDB closes and releases its lock

    def _acquire(self) -> ox.Store:
        deadline = time.monotonic() + self.wait
        delay = 0.02
        while True:
            try:
                return ox.Store(str(self.folder))
            except OSError as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    raise StoreBusy(f"the graph store {self.folder} stayed in use by another process for "
                                    f"{self.wait:.0f} s; try again when it has finished") from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def select(self, query: str, prefixes: dict[str, str], bindings: dict[str, Term] | None = None) -> dict:
        with self._open() as store:
            return _solutions(store.query(with_values(query, bindings or {}), prefixes=prefixes,
                                          use_default_graph_as_union=True))

    def update(self, request: str) -> None:
        with self._open() as store:
            store.update(request)  # one transaction: all of it or nothing
            store.flush()

    def graphs(self) -> set[str]:
        with self._open() as store:
            return {g.value for g in store.named_graphs()}

    def ntriples(self, graph: str) -> str:
        with self._open() as store:
            return store.dump(format=ox.RdfFormat.N_TRIPLES, from_graph=ox.NamedNode(graph)).decode("utf-8")


# -- a SPARQL 1.1 server ------------------------------------------------------------------------------
class SparqlServer:
    """A SPARQL 1.1 server (Oxigraph's ``oxigraph serve --union-default-graph``, Fuseki, GraphDB, …):
    queries to ``URL/query``, updates to ``URL/update``, as the SPARQL 1.1 protocol has them."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _post(self, path: str, body: str, content_type: str, accept: str = "") -> bytes:
        request = urllib.request.Request(self.url + path, data=body.encode("utf-8"), method="POST",
                                         headers={"Content-Type": content_type, **({"Accept": accept} if accept else {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace").strip().splitlines()[:1]
            raise GraphServerError(f"the SPARQL server at {self.url} answered {exc.code}: "
                                   f"{detail[0] if detail else exc.reason}") from exc
        except OSError as exc:
            raise GraphServerError(f"the SPARQL server at {self.url} cannot be reached ({exc}); is it running? "
                                   "(KB_GRAPH_URL)") from exc

    def select(self, query: str, prefixes: dict[str, str], bindings: dict[str, Term] | None = None) -> dict:
        prologue = "".join(f"PREFIX {p}: <{iri}>\n" for p, iri in prefixes.items())
        data = json.loads(self._post("/query", prologue + with_values(query, bindings or {}),
                                     "application/sparql-query", "application/sparql-results+json"))
        if "boolean" in data:
            return {"boolean": bool(data["boolean"])}
        names = data["head"]["vars"]
        return {"vars": names, "rows": [{n: (row[n]["value"] if n in row else None) for n in names}
                                        for row in data["results"]["bindings"]]}

    def update(self, request: str) -> None:
        self._post("/update", request, "application/sparql-update")

    def graphs(self) -> set[str]:
        rows = self.select("SELECT DISTINCT ?g WHERE { GRAPH ?g { } }", {})["rows"]
        return {r["g"] for r in rows}

    def ntriples(self, graph: str) -> str:
        query = f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH {ox.NamedNode(graph)} {{ ?s ?p ?o }} }}"
        body = self._post("/query", query, "application/sparql-query", "application/n-triples")
        return body.decode("utf-8")


def open_store(folder: Path, url: str = "") -> TripleStore:
    """The server at ``url`` when one is named (``KB_GRAPH_URL``), else the Oxigraph store in ``folder``."""
    return SparqlServer(url) if url else EmbeddedStore(folder)
