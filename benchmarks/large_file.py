"""Memory when one file is large: ``python benchmarks/large_file.py [--mb 200]``.

Two PDFs with the same 40 pages of text (the shipped corpus's own paragraphs), one with a small picture
on each page and one whose pictures (incompressible, as scans and photographs are) bring it to ``--mb``
megabytes. Each is ingested by ``kb ingest`` in a process of its own, into its own scratch knowledge base
with ``KB_MAX_FILE_MB`` raised to let it in; the process's peak resident memory and its time are recorded.
The small file is the base of the same run. The default limit's refusal is shown as a user sees it.
Results: ``benchmarks/large-file-results.json`` and ``evals/BENCHMARKS.md`` (section "One large file").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import machine, peak_rss_mb, write_section  # noqa: E402
from stores import say  # noqa: E402

RESULTS = ROOT / "benchmarks" / "large-file-results.json"
SECTION = "## One large file"
PAGES = 40


def page_texts() -> list[str]:
    """Forty pages of lines from the corpus's own paragraphs."""
    paragraphs = [p for f in sorted((ROOT / "corpus").glob("*.txt"))
                  for p in f.read_text(encoding="utf-8").split("\n\n") if len(p) > 200]
    lines = [line for p in paragraphs for line in textwrap.wrap(" ".join(p.split()), 95) + [""]]
    return ["\n".join(lines[i * 30:(i + 1) * 30]) for i in range(PAGES)]


def write_pdf(path: Path, picture_side: int) -> float:
    """A PDF of the corpus's text, each page with a square noise picture of ``picture_side`` pixels; its MB."""
    from PIL import Image
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    c.setTitle("A large report")
    for n, text in enumerate(page_texts()):
        picture = Image.frombytes("RGB", (picture_side, picture_side), os.urandom(3 * picture_side ** 2))
        c.drawImage(ImageReader(picture), 50, 50, width=200, height=200)
        y = 800
        for line in text.split("\n"):
            c.drawString(50, y, line)
            y -= 14
        c.showPage()
    c.save()
    return path.stat().st_size / 1e6


def ingest_one(path: Path, home: Path, limit_mb: int | None) -> dict:
    """``kb ingest PATH`` in a new process; its exit code, last lines, peak memory and time."""
    env = {**os.environ, "KB_HOME": str(home)}
    if limit_mb is not None:
        env["KB_MAX_FILE_MB"] = str(limit_mb)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", str(path)], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    peak = json.loads(proc.stderr.strip().splitlines()[-1])["peak_rss_mb"]
    return {"exit": proc.returncode, "seconds": round(seconds, 1), "peak_rss_mb": round(peak),
            "said": [line for line in (proc.stdout + proc.stderr).splitlines()
                     if line.startswith(("ingested", "FAILED", "kb: ")) or " documents, " in line]}


def child(path: str) -> int:
    """Run ``kb ingest`` here and report this process's peak memory on the last line of stderr."""
    from kb.ui.cli import main as kb_main

    try:
        code = kb_main(["ingest", path, "--quiet"])
    finally:
        print(json.dumps({"peak_rss_mb": peak_rss_mb()}), file=sys.stderr, flush=True)
    return code


def run(mb: int, work: Path) -> dict:
    results = {"machine": machine(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "pages": PAGES, "runs": []}
    # Picture side for the target size: 3 bytes a pixel, incompressible, written in ASCII85 (5 characters for 4 bytes).
    side = int((mb * 1e6 / PAGES / 3 / 1.25) ** 0.5)
    for name, picture_side, limit in (("small", 64, None), ("large", side, mb + 50), ("large, default limit", None, None)):
        path = work / ("small.pdf" if name == "small" else "large.pdf")
        if picture_side is not None:
            say(f"writing {name} PDF")
            size = write_pdf(path, picture_side)
        say(f"kb ingest {path.name} ({size:.0f} MB)")
        row = {"file": name, "mb": round(size, 1), **ingest_one(path, work / f"home-{len(results['runs'])}", limit)}
        say(json.dumps(row))
        results["runs"].append(row)
    RESULTS.write_text(json.dumps(results, indent=1))
    return results


def render(results: dict) -> str:
    small, large, refused = results["runs"]
    lines = [SECTION, "",
             f"`python benchmarks/large_file.py` on {results['machine'].get('cpu', '?')}, {results['started']}: "
             f"`kb ingest` of one PDF of {results['pages']} pages of the corpus's text, in a process of its own, with "
             "a small picture on each page and then with large incompressible ones (as scans and photographs are). "
             "Peak resident memory of the process, the model's loading included.", "",
             "| file | MB | peak memory (MB) | time (s) | exit |", "|---|---:|---:|---:|---:|"]
    for r in (small, large):
        lines.append(f"| {r['file']} | {r['mb']} | {r['peak_rss_mb']} | {r['seconds']} | {r['exit']} |")
    extra = large["peak_rss_mb"] - small["peak_rss_mb"]
    lines += ["",
              f"The large file's peak is {extra:+} MB from the small one's ({extra / large['mb']:.2f} MB for each MB of "
              "file): the PDF reader reads from the file as each page needs it and forgets a page's objects once its "
              "text is read, and pictures are never decoded, so memory stays that of one page however large the "
              "file. Files above `KB_MAX_FILE_MB` (20 by default) are refused by name before they are opened "
              f"(exit {refused['exit']}):", "", "```",
              *refused["said"], "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--child")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child)
    if not args.report_only:
        work = Path(tempfile.mkdtemp(prefix="kb-large-"))
        try:
            run(args.mb, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    results = json.loads(RESULTS.read_text())
    write_section(SECTION, render(results))
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
