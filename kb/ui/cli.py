"""The ``kb`` command line: a thin layer over :class:`kb.knowledge.KnowledgeBase`; JSON comes from the records."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from kb.config import PROJECT_ROOT, Settings
from kb.knowledge import KnowledgeBase
from kb.records import Filters
from kb.search.retrieval import FilterError
from kb.ui import references, views
from kb.stores.graph import QueryRefused
from kb.stores.lock import LockedError
from kb.stores.triplestore import GraphServerError, StoreBusy
from kb.vocab.ontology import OntologyError


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--k", type=int, default=None, help="how many passages (default 5)")
    p.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default=None)
    p.add_argument("--place", help="place id or label; narrower places are included (London finds Barnet)")
    p.add_argument("--dimension", help="dimension id or label, e.g. relating")
    p.add_argument("--concept", help="concept id or label; narrower concepts are included")
    p.add_argument("--doc", help="document id (comma-separated for several)")
    p.add_argument("--year", type=int, help="publication year")
    p.add_argument("--type", dest="doc_type", help="document type, e.g. research-report")
    p.add_argument("--no-expand", action="store_true", help="do not expand the query with the ontology")
    p.add_argument("--batch", type=Path, metavar="FILE", help="one query per line (text, or JSONL with 'question')")
    p.add_argument("--json", action="store_true", help="JSON output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kb", description="Knowledge base and semantic search over systems-leadership evidence.")
    parser.add_argument("--home", type=Path, help="where the knowledge base lives (KB_HOME, default ./.kb)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="ingest files or folders (default: the shipped corpus)")
    p.add_argument("paths", nargs="*", type=Path)
    p.add_argument("--prune", action="store_true", help="remove documents whose files are gone")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("search", help="ranked passages")
    p.add_argument("query", nargs="?", default="")
    _add_filters(p)

    p = sub.add_parser("ask", help="an answer with citations")
    p.add_argument("question", nargs="?", default="")
    p.add_argument("--references", nargs="?", const="harvard", metavar="STYLE",
                   help="list the cited documents in a citation style (harvard, or a .csl file)")
    _add_filters(p)

    p = sub.add_parser("cite", help="documents as references: in a style, or as BibTeX, RIS or CSL-JSON")
    p.add_argument("doc_ids", nargs="*", metavar="DOC")
    p.add_argument("--question", help="the documents the answer to this question cites")
    p.add_argument("--format", default="harvard", help=f"one of {', '.join(references.FORMATS)}, or a .csl file")

    p = sub.add_parser("docs", help="the documents")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("doc", help="one document")
    p.add_argument("doc_id")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true")
    g.add_argument("--text", action="store_true", help="print its normalised full text")

    p = sub.add_parser("concepts", help="the ontology's concepts with passage counts")
    p.add_argument("--scheme", choices=["concepts", "dimensions", "places"])
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("sparql", help="run a SPARQL SELECT or ASK over the knowledge graph")
    p.add_argument("query", help="the query, or @FILE to read it from a file")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("export", help="export the knowledge graph")
    p.add_argument("--format", choices=["ttl", "jsonld"], default="ttl")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")

    p = sub.add_parser("eval", help="run the evaluation and write a report")
    p.add_argument("--gold", type=Path, help="gold questions (JSONL); default evals/gold.jsonl")
    p.add_argument("--out", type=Path, help="report folder (default KB_HOME/eval)")
    p.add_argument("--quick", action="store_true", help="skip the llama-index baseline")
    p.add_argument("--judgements", type=Path,
                   help="passages judged relevant besides the gold evidence (default: GOLD's .judged.jsonl, if any)")

    p = sub.add_parser("adapt", help="adapt the embedding model to the knowledge base's own text")
    p.add_argument("--method", nargs="+", choices=["ict", "neighbours", "ontology", "tsdae"], default=None,
                   help="where the training pairs come from (default: ict, the best on the shipped corpus)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--gold", type=Path, help="the question set that decides whether it is better (default evals/gold.jsonl)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--use", action="store_true", help="switch to the adapted model whatever the evaluation says")
    g.add_argument("--undo", action="store_true", help="return to the packaged model")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("check", help="check that the store, graph and manifest agree")
    p.add_argument("--repair", action="store_true", help="fix what is inconsistent")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("app", help="ingest the corpus if needed and start the Streamlit app")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1")
    return parser


def _queries(path: Path) -> list[str]:
    """Lines of a batch file: plain text, or JSONL objects with a ``question`` (or ``query``) field."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"kb: {path}, line {n}: not valid JSON ({exc.msg})")
            q = obj.get("question", obj.get("query")) if isinstance(obj, dict) else None
            if not isinstance(q, str):
                raise SystemExit(f"kb: {path}, line {n}: no 'question' field")
            out.append(q)
        else:
            out.append(line)
    return out


def _filters(args) -> Filters:
    return Filters(place=args.place, concept=args.concept, dimension=args.dimension, doc=args.doc,
                   year=args.year, doc_type=args.doc_type)


def cmd_search(kb: KnowledgeBase, args) -> int:
    labels = kb.labels()
    queries = _queries(args.batch) if args.batch else [args.query]
    for q in queries:
        result = kb.search(q, k=args.k or kb.settings.k, mode=args.mode or kb.settings.mode,
                           filters=_filters(args), expand=not args.no_expand)
        if args.json:
            _print_json(result.to_json(labels))
            continue
        if not result.hits:
            print(f"No passages found for {q!r}.")
        if result.recognised:
            print(f"(recognised: {', '.join(result.recognised)})")
        for h in result.hits:
            j = h.to_json(labels)
            page = f", p. {j['page']}" if j["page"] is not None else ""
            print(f"{j['rank']}. {j['title']}{page}  [{j['doc_id']} {j['start']}-{j['end']}]  score {j['score']:.4f}")
            print(textwrap.indent(textwrap.fill(j["text"][:600] + ("…" if len(j["text"]) > 600 else ""), 100), "   "))
            tags = j["places"] + j["concepts"] + j["dimensions"]
            if tags:
                print("   tags: " + ", ".join(tags))
            print()
    return 0


def cmd_ask(kb: KnowledgeBase, args) -> int:
    labels = kb.labels()
    questions = _queries(args.batch) if args.batch else [args.question]
    for q in questions:
        answer = kb.ask(q, k=args.k or kb.settings.k, mode=args.mode or kb.settings.mode,
                        filters=_filters(args), expand=not args.no_expand)
        cited = references.styled(references.cited(answer, kb.document), args.references) if args.references else []
        if args.json:
            _print_json({**answer.to_json(labels), **({"references": cited} if args.references else {})})
        else:
            print(answer.to_text())
            if cited:
                print(f"\nWorks cited ({Path(args.references).stem})\n" + "\n".join(cited))
    return 0


def cmd_cite(kb: KnowledgeBase, args) -> int:
    if args.format not in references.FORMATS and not args.format.endswith(".csl"):
        raise ValueError(f"unknown format {args.format!r}: use one of {', '.join(references.FORMATS)}, or a .csl file")
    if args.question:
        metas = references.cited(kb.ask(args.question), kb.document)
    else:
        missing = [d for d in args.doc_ids if kb.document(d) is None]
        if missing:
            raise ValueError(f"no document {', '.join(missing)}: `kb docs` lists them")
        metas = [kb.document(d).meta for d in args.doc_ids or [d.doc_id for d in kb.documents()]]
    sys.stdout.write(references.export(metas, args.format))
    return 0


def cmd_ingest(kb: KnowledgeBase, args) -> int:
    report = kb.ingest(args.paths or None, prune=args.prune, progress=not args.quiet and not args.json)
    if args.json:
        _print_json(report.to_json())
    else:
        for r in report.having("ingested"):
            print(f"ingested  {r.path}  → {r.doc_id} ({r.passages} passages)")
        unchanged = report.having("unchanged")
        if unchanged:
            print(f"unchanged {len(unchanged)} file(s)")
        for r in report.having("duplicate"):
            print(f"skipped   {r.path}: {r.reason}")
        for r in report.having("listed"):
            print(f"listed    {r.path}: {r.reason}")
        for path in report.pruned:
            print(f"pruned    {path}")
        for w in report.warnings:
            print(f"warning   {w}", file=sys.stderr)
        for r in report.failed:
            print(f"FAILED    {r.path}: {r.reason}", file=sys.stderr)
        total = kb.store.count()
        written = report.passages_written
        speed = f"; {written} passages written in {report.seconds:.1f} s ({report.passages_per_second:.1f}/s)" if written else ""
        print(f"{len(kb.docs.ids())} documents, {total} passages in {kb.settings.home}{speed}")
    if report.having("ingested") and kb.compile_encoder() and not args.json:
        print(f"compiled the embedding model into {kb.settings.encoder_dir} so that later commands start faster")
    if report.failed:
        print(views.failed_summary(report), file=sys.stderr)
        return 1
    return 0


def cmd_docs(kb: KnowledgeBase, args) -> int:
    docs = kb.documents()
    if args.json:
        _print_json([d.to_json() for d in docs])
        return 0
    if not docs:
        print("The knowledge base is empty: run `kb ingest`.")
    for d in docs:
        authors = ", ".join(d.authors) or "—"
        pages = f"{d.pages:>3} pp" if d.pages else "     —"
        print(f"{d.doc_id:<34} {d.year or '    '}  {pages}  {d.passages:>4} passages  {views.shorten(d.title, 70)}  ({authors})")
    return 0


def cmd_doc(kb: KnowledgeBase, args) -> int:
    if args.text:
        doc = kb.document(args.doc_id)
        if doc is None:
            return _unknown_doc(kb, args.doc_id)
        sys.stdout.write(doc.text)
        return 0
    info = kb.document_info(args.doc_id)
    if info is None:
        return _unknown_doc(kb, args.doc_id)
    if args.json:
        _print_json(info.to_json())
    else:
        print(f"{info.title}\n{', '.join(info.authors) or '—'} ({info.year or 'n.d.'}), {info.type}")
        print(f"id {info.doc_id}; {len(info.pages)} pages; {info.passages} passages; {info.characters} characters; {info.path}")
        for p in info.pages:
            print(f"  page {p.page:>3}: characters {p.start}–{p.end}")
    return 0


def _unknown_doc(kb, doc_id: str) -> int:
    known = ", ".join(kb.docs.ids()[:10])
    print(f"kb: no document {doc_id!r}. Known: {known or '(none: run kb ingest)'}", file=sys.stderr)
    return 2


def cmd_concepts(kb: KnowledgeBase, args) -> int:
    items = kb.concepts(args.scheme)
    if args.json:
        _print_json([c.to_json() for c in items])
        return 0
    for depth, item in views.nested(items):
        c = item.concept
        alt = f" (also: {', '.join(c.alt_labels[:4])})" if c.alt_labels else ""
        print(f"{c.scheme:<10} {item.passages:>5}  {'  ' * depth}{c.label}{alt}  [{c.id}]")
    return 0


def cmd_sparql(kb: KnowledgeBase, args) -> int:
    text = Path(args.query[1:]).read_text(encoding="utf-8") if args.query.startswith("@") else args.query
    try:
        result = kb.graph.query(text)
    except QueryRefused as exc:
        print(f"kb: {exc}", file=sys.stderr)
        return 2
    if args.json:
        _print_json(result)
    elif "boolean" in result:
        print("yes" if result["boolean"] else "no")
    else:
        print("\t".join(result["vars"]))
        for row in result["rows"]:
            print("\t".join("" if row[v] is None else row[v] for v in result["vars"]))
    return 0


def cmd_export(kb: KnowledgeBase, args) -> int:
    data = kb.graph.export(args.format)
    if args.out:
        args.out.write_text(data, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(data)
    return 0


def cmd_eval(kb: KnowledgeBase, args) -> int:
    # Here, not at the top: llama-index and matplotlib take seconds to import, and only `kb eval` needs them.
    from kb.evals.gold import GoldError
    from kb.evals.run import run_evaluation

    gold = args.gold or (PROJECT_ROOT / "evals" / "gold.jsonl")
    out = args.out or (kb.settings.home / "eval")
    try:
        report = run_evaluation(kb, gold, out, baseline=not args.quick, judgements=args.judgements)
    except GoldError as exc:
        print(f"kb: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"report written to {out}")
    return 0


def cmd_adapt(kb: KnowledgeBase, args) -> int:
    # Here, not at the top: training loads torch and sentence-transformers, and only `kb adapt` trains.
    from kb.adapt import DEFAULT_METHODS, adapt, describe, switch

    if args.undo:
        if kb.settings.model:
            print("kb: KB_MODEL names the model, so there is nothing to undo here", file=sys.stderr)
            return 2
        switch(kb, None, progress=not args.quiet)
        print(f"back to {KnowledgeBase(kb.settings).settings.model_label}; every document embedded again with it")
        return 0
    gold = args.gold or (PROJECT_ROOT / "evals" / "gold.jsonl")
    outcome = adapt(kb, gold, methods=args.method or DEFAULT_METHODS, epochs=args.epochs, use=args.use,
                    progress=not args.quiet and not args.json)
    if args.json:
        _print_json(outcome.to_json())
    else:
        print(describe(outcome))
    return 0


def cmd_check(kb: KnowledgeBase, args) -> int:
    problems = kb.check(repair=args.repair)
    if args.json:
        _print_json({"consistent": not problems or args.repair, "problems": problems, "repaired": args.repair})
    else:
        for p in problems:
            print(("repaired: " if args.repair else "") + p)
        if not problems:
            print("consistent: the vocabulary and the graph validate; the store, the graph and the manifest agree.")
    return 0 if (not problems or args.repair) else 1


def cmd_app(kb: KnowledgeBase, args) -> int:
    cmd = [sys.executable, "-m", "kb.ui.serve", "--server.port", str(args.port),
           "--server.address", args.address, "--browser.gatherUsageStats", "false",
           "--server.headless", "true"]
    if kb.settings.auth:  # a shared deployment: the sign-in settings, kept under KB_HOME
        from kb.ui.auth import write_secrets

        if not kb.settings.auth_client_secret:
            print("kb: KB_AUTH needs KB_AUTH_CLIENT_SECRET too: the app signs users in as a confidential "
                  "client of the provider (register it there with the redirect address KB_APP_URL/oauth2callback)",
                  file=sys.stderr)
            return 2
        url = kb.settings.app_url or f"http://{args.address}:{args.port}"
        cmd += ["--secrets.files", str(write_secrets(kb.settings, url))]
        print(f"Sign-in through {kb.settings.auth}: reading is open, changes need a signed-in user.")
    if kb.is_empty():
        print("The knowledge base is empty: ingesting the shipped corpus first.")
    kb.prepare_app()
    print(f"Starting the app on http://{args.address}:{args.port}")
    env = {**os.environ, "KB_HOME": str(kb.settings.home.resolve())}  # --home reaches the app too
    return subprocess.call(cmd, env=env)


COMMANDS = {
    "ingest": cmd_ingest, "search": cmd_search, "ask": cmd_ask, "cite": cmd_cite, "docs": cmd_docs, "doc": cmd_doc,
    "concepts": cmd_concepts, "sparql": cmd_sparql, "export": cmd_export, "eval": cmd_eval,
    "adapt": cmd_adapt, "check": cmd_check, "app": cmd_app,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env(home=args.home)
    try:
        kb = KnowledgeBase(settings)
        return COMMANDS[args.command](kb, args)
    except (LockedError, OntologyError, FilterError, ValueError, FileNotFoundError, StoreBusy, GraphServerError) as exc:
        print(f"kb: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
