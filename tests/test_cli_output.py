"""What `kb docs` and `kb concepts` print for a reader: pages only where a document has them, titles cut at
a word, facets under their dimension."""

from __future__ import annotations

import re

from kb.ui.cli import main
from kb.ui.views import shorten


def test_docs_show_no_page_count_for_web_pages_and_cut_titles_at_a_word(corpus_kb, capsys):
    assert main(["--home", str(corpus_kb.settings.home), "docs"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert " 0 pp" not in lines["nhsla-systems-leadership-2014"] and "—" in lines["nhsla-systems-leadership-2014"]
    assert "54 pp" in lines["vsc-synthesis-2013"]
    assert "Systems Leadership: Exceptional leadership for exceptional times…" in lines["vsc-synthesis-2013"]
    assert shorten("Pooled budgets in Barnet and Bradford", 20) == "Pooled budgets in…"


def test_concepts_of_the_dimensions_scheme_nest_facets_under_their_dimension(corpus_kb, capsys):
    assert main(["--home", str(corpus_kb.settings.home), "concepts", "--scheme", "dimensions"]) == 0
    rows = [re.match(r"^dimensions +\d+  ( *)(.+)  \[([\w-]+)\]$", line) for line in capsys.readouterr().out.splitlines()]
    depth = [(len(m.group(1)) // 2, m.group(3)) for m in rows]
    assert [d for d, _ in depth].count(0) == 6 and [d for d, _ in depth].count(1) == 25
    being = [i for d, i in depth].index("ways-of-being")
    facets = [i for d, i in depth[being + 1:being + 7]]
    assert "humility" in facets and all(d == 1 for d, _ in depth[being + 1:being + 7])
