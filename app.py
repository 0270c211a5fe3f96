"""The Streamlit front end: ask with cited passages, browse the ontology, the evidence map,
places, the library and evaluation. Start it with ``kb app`` (or ``streamlit run app.py``).

Thin on purpose: the work is done by :class:`kb.knowledge.KnowledgeBase` (the same calls as
the CLI), the pure helpers in :mod:`kb.ui.views` and the uploads of :mod:`kb.ui.uploads`. Corpus text is only ever shown through
escaped Markdown or ``st.text``/``st.code``; no raw HTML is rendered anywhere.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from kb.config import PROJECT_ROOT
from kb.knowledge import KnowledgeBase, shared
from kb.records import Filters
from kb.search.retrieval import FilterError
from kb.stores.lock import LockedError
from kb.stores.triplestore import GraphServerError, StoreBusy
from kb.ui import auth, references, uploads, views

# An emoji favicon is drawn in the page; a ":material/…" one would be fetched from Google's font servers.
st.set_page_config(page_title="Systems leadership evidence", page_icon="🧭", layout="wide")

EXAMPLES = [
    "How did others handle pooled budgets?",
    "What helped partners agree a shared purpose?",
    "How do systems leaders build trust across organisations?",
    "What is an authorising environment?",
]
SCHEMES = {"Concepts": "concepts", "Dimensions": "dimensions", "Places": "places"}
SCHEME_NAMES = {v: k for k, v in SCHEMES.items()}
FILTER_KEYS = ("f_place", "f_dimension", "f_concept", "f_doc", "f_year")
esc = views.md_escape


# -- the knowledge base, once per process (shared with the warm-up `kb app` starts) --------------
def get_kb() -> KnowledgeBase:
    return shared()


def ensure_ingested(kb: KnowledgeBase) -> None:
    """An empty knowledge base ingests the shipped corpus first, with a progress widget."""
    if not kb.is_empty():
        return
    with st.status("The knowledge base is empty: ingesting the shipped corpus…", expanded=True) as status:
        bar = st.progress(0.0, text="Starting")

        def step(name: str, n: int, total: int) -> None:
            bar.progress(n / max(total, 1), text=f"{name} ({min(n + 1, total)} of {total})" if name else "Building the search index")

        try:
            report = kb.ingest(progress=False, on_progress=step)
        except LockedError as exc:
            status.update(label="Another ingestion is running", state="error")
            st.error(esc(str(exc)) + ". Reload the page in a minute.")
            st.stop()
        info, errors = views.report_lines(report)
        bar.progress(1.0, text="Done")
        st.code("\n".join(info + errors) or "nothing to do", language=None)
        status.update(label=f"Ingested {len(report.having('ingested'))} documents", state="error" if errors else "complete",
                      expanded=bool(errors))


# -- navigation helpers (callbacks run before the next script run) --------------------------------
def go(page: str, **state) -> None:
    st.session_state.update(state)
    st.session_state["goto"] = page


def open_concept(cid: str) -> None:
    kb = get_kb()
    c = kb.ontology.concepts.get(cid)
    if c is None:
        return
    go("browse", browse_scheme=SCHEME_NAMES[c.scheme], browse_concept=cid)


def set_filter(kind: str, label: str) -> None:
    st.session_state[f"f_{kind}"] = label


def clear_filters() -> None:
    for key in FILTER_KEYS:
        st.session_state[key] = None


def set_question(q: str) -> None:
    st.session_state["question"] = q


def show_passage(kb: KnowledgeBase, p, labels: dict[str, str], key: str, limit: int = 600) -> None:
    """A passage as escaped text with its source and tags (used outside the answer)."""
    title = kb.title(p.doc_id)
    page = f", p. {p.page}" if p.page is not None else ""
    st.markdown(f"**{esc(title)}{esc(page)}**")
    text = " ".join(p.text.split())
    st.markdown(esc(text[:limit] + ("…" if len(text) > limit else "")))
    names = [lab for _, _, lab in views.tags(p, labels)]
    if names:
        st.caption(esc(" · ".join(names)))


# -- who may change the knowledge base ------------------------------------------------------------------
def may_change(kb: KnowledgeBase) -> bool:
    """On a shared deployment (``KB_AUTH``) uploading and evaluating need a signed-in user; else all is open."""
    return not kb.settings.auth or bool(st.user.is_logged_in)


def user_name() -> str:
    """Who is signed in, as the provider names them ("" on one laptop)."""
    if not st.user.is_logged_in:
        return ""
    return str(st.user.get("name") or st.user.get("email") or st.user.get("sub") or "a user")


def note_change(kb: KnowledgeBase, action: str, what: str) -> None:
    if kb.settings.auth:
        auth.record_change(kb.settings, user_name(), action, what)


def sign_in_box(kb: KnowledgeBase, what: str) -> None:
    """Say why a change is not offered, with the way to sign in."""
    st.info(f"Sign in to {what}: this knowledge base is shared, and changes need a signed-in user.")
    sign_in_button(kb, key=f"sign_in_{what}")


def sign_in_button(kb: KnowledgeBase, key: str) -> None:
    if st.button("Sign in", key=key, type="primary"):
        try:
            st.login()
        except Exception as exc:  # the [auth] secrets are missing: started without `kb app`
            st.error(esc(f"Sign-in is not set up ({exc}). Start the app with `kb app`, which writes the "
                         f"sign-in settings for {kb.settings.auth} under {kb.settings.auth_dir}."))


def account(kb: KnowledgeBase) -> None:
    """The sidebar's sign-in line, on a shared deployment only."""
    if not kb.settings.auth:
        return
    if st.user.is_logged_in:
        st.caption(esc(f"Signed in as {user_name()}"))
        if st.button("Sign out", key="sign_out"):
            st.logout()
    else:
        st.caption("Reading is open; sign in to add documents or run evaluations.")
        sign_in_button(kb, key="sign_in_sidebar")


# -- Ask ---------------------------------------------------------------------------------------------
def current_filters() -> Filters:
    s = st.session_state
    return Filters(place=s.get("f_place"), dimension=s.get("f_dimension"), concept=s.get("f_concept"),
                   doc=s.get("f_doc"), year=s.get("f_year"))


def cached_answer(kb: KnowledgeBase, question: str, filters: Filters):
    key = (question, tuple(sorted(filters.__dict__.items())), kb.generation())
    held = st.session_state.get("_answer")
    if held and held[0] == key:
        return held[1], held[2]
    t0 = time.perf_counter()
    ans = kb.ask(question, k=kb.settings.k, mode=kb.settings.mode, filters=filters)
    seconds = time.perf_counter() - t0
    st.session_state["_answer"] = (key, ans, seconds)
    return ans, seconds


def with_current(options: list[str], key: str) -> list[str]:
    """The options, plus the value a tag's "filter by this" put in ``key`` if they lack it."""
    current = st.session_state.get(key)
    return options + [current] if current and current not in options else options


def page_ask() -> None:
    kb = get_kb()
    st.title("Ask the evidence")
    st.caption("A short answer in which every sentence is quoted from a document, with its page.")
    onto = kb.ontology
    counts = kb.link_counts()
    docs = kb.documents()

    st.write("Try an example:")
    cols = st.columns(len(EXAMPLES))
    for i, (col, ex) in enumerate(zip(cols, EXAMPLES)):
        col.button(ex, key=f"example-{i}", on_click=set_question, args=(ex,), width="stretch")
    question = st.text_input("Your question", key="question", placeholder="e.g. How did others handle pooled budgets?")

    with st.expander("Filters", expanded=any(st.session_state.get(k) for k in FILTER_KEYS)):
        c1, c2, c3, c4, c5 = st.columns(5)
        c1.selectbox("Place", [c.label for c in onto.in_scheme("places")], index=None, key="f_place", placeholder="Any place")
        c2.selectbox("Dimension", with_current(views.dimension_options(onto, counts), "f_dimension"), index=None,
                     key="f_dimension", placeholder="Any dimension or facet")
        concepts = [c.label for c in onto.in_scheme("concepts") if counts.get(c.id)]
        c3.selectbox("Concept", with_current(concepts, "f_concept"), index=None, key="f_concept", placeholder="Any concept")
        titles = {d.doc_id: d.title for d in docs}
        c4.selectbox("Document", list(titles), index=None, key="f_doc", format_func=lambda d: titles.get(d, d), placeholder="Any document")
        years = sorted({d.year for d in docs if d.year})
        c5.selectbox("Year", years, index=None, key="f_year", placeholder="Any year")
        st.button("Clear filters", on_click=clear_filters)

    if not question.strip():
        st.info("Ask a question, or pick an example above. Answers quote the documents and give the page of every quote.")
        return
    filters = current_filters()
    try:
        with st.spinner("Finding the evidence…"):
            ans, seconds = cached_answer(kb, question, filters)
    except FilterError as exc:
        st.error(esc(str(exc)))
        return

    labels = kb.labels()
    publishers = {d.doc_id: d.publisher for d in docs}
    st.subheader("Answer")
    if ans.answered:
        st.markdown(esc(ans.answer))
    else:
        st.warning(esc(ans.answer))
    active = {k: v for k, v in filters.__dict__.items() if v not in (None, "")}
    st.caption(f"{seconds:.2f} s" + (" · filtered by " + esc(", ".join(f"{k} {v}" for k, v in active.items())) if active else ""))
    for note in ans.notes:
        st.caption(esc(note))

    by_id = {p.chunk_id: p for p in kb.passages([c.chunk_id for c in ans.citations])}
    if ans.citations:
        st.subheader("Sources")
    for src in views.sources(ans.citations):
        first = src.citations[0]
        doc = kb.document(first.doc_id)
        p = by_id.get(src.chunk_id)
        publisher = publishers.get(first.doc_id, "")
        with st.container(border=True):
            st.markdown(f"**{esc(src.numbers)} {esc(first.title)}**")
            who = views.authors_text(first.authors) or publisher or "author not given"
            st.caption(esc(f"{who} · {first.year or 'n.d.'} · {src.pages}"))
            quotes = [(c.start, c.end) for c in src.citations]
            if doc is not None and p is not None:
                runs = views.quoted_runs(doc.text, p.start, p.end, quotes)
            else:
                runs = [(c.quote, True) for c in src.citations]
            st.markdown(views.emphasised_markdown(runs))
            if p is not None:
                tag_row(p, labels, f"c{first.n}")
            left, right = st.columns([3, 2])
            where = f"p. {first.page}" if first.page is not None else ""
            with left.expander(f"Open the document at {where}" if where else "Open the document here"):
                if doc is not None:
                    st.caption(esc(f"{first.title} — {where or 'no page numbers'}"))
                    st.text(views.page_text(doc, first.page, around=(first.start, src.citations[-1].end)))
            with right:
                st.caption("Copy reference")
                refs = dict.fromkeys(views.citation_reference(c, publisher) for c in src.citations)
                st.code("\n".join(refs), language=None, wrap_lines=True)
    cited_docs = references.cited(ans, kb.document)
    if ans.citations or ans.passages:
        md = views.answer_markdown(ans, publishers, active, works_cited=references.styled(cited_docs))
        st.download_button("Download answer with references", md, file_name="answer.md", mime="text/markdown")
    if cited_docs:
        bib, ris = st.columns(2)
        bib.download_button("Cited documents as BibTeX", references.bibtex(cited_docs), file_name="cited.bib",
                            mime="application/x-bibtex")
        ris.download_button("Cited documents as RIS", references.ris(cited_docs), file_name="cited.ris",
                            mime="application/x-research-info-systems")
    cited = {c.chunk_id for c in ans.citations}
    others = [h for h in ans.passages if h.passage.chunk_id not in cited]
    if others:
        with st.expander(f"Other passages found ({len(others)})", expanded=not ans.answered):
            for h in others:  # their tags as text: a page of popovers is slow to draw
                show_passage(kb, h.passage, labels, f"o{h.rank}")


def tag_row(p, labels: dict[str, str], prefix: str) -> None:
    """The passage's places, concepts and dimensions as tags: filter by one, or open it in Browse."""
    items = views.tags(p, labels)[:10]
    if not items:
        return
    cols = st.columns(min(len(items), 5))
    icons = {"place": ":material/place:", "concept": ":material/lightbulb:", "dimension": ":material/explore:"}
    for i, (kind, cid, label) in enumerate(items):
        with cols[i % len(cols)].popover(esc(label), icon=icons[kind], width="stretch"):
            st.button(f"Filter answers by this {kind}", key=f"tag-{prefix}-{kind}-{cid}-f",
                      on_click=set_filter, args=(kind, label))
            st.button("Open in Browse", key=f"tag-{prefix}-{kind}-{cid}-b", on_click=open_concept, args=(cid,))


# -- Browse -------------------------------------------------------------------------------------------
def page_browse() -> None:
    kb = get_kb()
    onto = kb.ontology
    counts = kb.link_counts()
    st.title("Browse concepts, dimensions and places")
    scheme_name = st.radio("Scheme", list(SCHEMES), key="browse_scheme", horizontal=True)
    scheme = SCHEMES[scheme_name or "Concepts"]
    rows = views.scheme_tree(onto, scheme, counts)
    left, right = st.columns([2, 3])
    with left:
        st.caption(f"{len(onto.in_scheme(scheme))} entries; passages linked directly and with narrower entries. "
                   "Select a row to open it.")
        frame = pd.DataFrame([{"entry": r["tree"], "passages": r["passages"], "with narrower": r["with narrower"]} for r in rows])

        def picked() -> None:
            sel = st.session_state.get("browse_table")
            if sel and sel.selection.rows:
                st.session_state["browse_concept"] = rows[sel.selection.rows[0]]["id"]

        st.dataframe(frame, hide_index=True, height=520, key="browse_table", on_select=picked,
                     selection_mode="single-row",
                     column_config={"with narrower": st.column_config.ProgressColumn(
                         "with narrower", format="%d", min_value=0, max_value=max([r["with narrower"] for r in rows] + [1]))})
    options = [c.id for c in onto.in_scheme(scheme)]
    if st.session_state.get("browse_concept") not in options:
        st.session_state.pop("browse_concept", None)
    with right:
        cid = st.selectbox("Open", options, index=None, key="browse_concept", placeholder="Choose an entry",
                           format_func=lambda i: f"{onto.label(i)} ({counts.get(i, 0)})")
        if cid:
            concept_page(kb, cid)


def concept_page(kb: KnowledgeBase, cid: str) -> None:
    onto = kb.ontology
    info = kb.concept_page(cid)
    c = info.concept
    st.header(c.label)
    st.caption(esc(f"{c.scheme[:-1]} · id {c.id}"))
    if c.definition:
        st.markdown(esc(c.definition))
    if c.alt_labels:
        st.markdown("**Also called:** " + esc(", ".join(c.alt_labels)))
    if c.scheme == "places" and c.lat is not None:
        st.caption(f"{c.lat:.3f}, {c.lon:.3f}")
    for name, ids in (("Broader", c.broader), ("Narrower", c.narrower), ("Related", c.related)):
        ids = [i for i in ids if i in onto.concepts]
        if not ids:
            continue
        st.markdown(f"**{name}**")
        cols = st.columns(min(len(ids), 4))
        for j, other in enumerate(ids):
            cols[j % len(cols)].button(onto.label(other), key=f"rel-{name}-{other}", on_click=open_concept,
                                       args=(other,), width="stretch")
    st.subheader(f"{info.total} passages evidence {c.label}")
    if info.documents:
        a, b = st.columns(2)
        a.markdown("**Documents**")
        a.dataframe(pd.DataFrame(info.documents, columns=["doc_id", "title", "passages"])[["title", "passages"]],
                    hide_index=True)
        if info.places:
            b.markdown("**Places**")
            b.dataframe(pd.DataFrame(info.places, columns=["id", "place", "passages"])[["place", "passages"]],
                        hide_index=True)
    labels = kb.labels()
    for p in info.passages:
        with st.container(border=True):
            show_passage(kb, p, labels, f"b-{p.chunk_id}")
    if info.total > len(info.passages):
        st.caption(f"Showing {len(info.passages)} of {info.total}; filter by it on the Ask page to search within them.")


# -- Evidence map ---------------------------------------------------------------------------------------
def page_evidence() -> None:
    kb = get_kb()
    onto = kb.ontology
    st.title("Evidence map")
    st.caption("Passages per cell: where the evidence is, and where the gaps are (empty cells).")
    axes = list(views.AXES)
    a, b, c = st.columns([2, 2, 3])
    rows = a.selectbox("Rows", axes, index=axes.index("dimension"), key="em_rows", format_func=views.AXIS_LABELS.get)
    cols = b.selectbox("Columns", axes, index=axes.index("region"), key="em_cols", format_func=views.AXIS_LABELS.get)
    hide = c.checkbox("Hide rows and columns with no evidence", key="em_hide")
    shape = c.radio("Show as", ["Bubbles", "Table"], key="em_shape", horizontal=True)
    every = kb.documents()
    only = map_filter(every)
    docs, within = views.filtered(every, only)
    if only.active():
        st.caption(f"Counting {len(docs)} of {len(every)} documents ({sum(d.passages for d in docs)} passages).")
    if not docs:
        st.info("No document matches these filters.")
        return
    row_axis, col_axis = views.axis_source(rows), views.axis_source(cols)
    cells = kb.evidence_cells(row_axis, col_axis, within)
    frame = views.evidence_table(cells, rows, cols, onto, docs, include_empty=False if hide else None)
    row_keys, col_keys = frame.attrs["row_keys"], frame.attrs["col_keys"]
    if frame.empty:
        st.info("No passages link these two axes yet.")
        return
    numeric = frame.astype("float")
    styled = (numeric.style.background_gradient(cmap="YlGnBu", axis=None, vmin=0)
              .format(lambda v: "" if pd.isna(v) else f"{v:.0f}")
              .highlight_null(color="#f6f6f6"))
    row_label = dict(zip(row_keys, frame.index))
    col_label = dict(zip(col_keys, frame.columns))

    def picked() -> None:
        sel = st.session_state.get("em_table")
        if sel and sel.selection.cells:
            r, col = sel.selection.cells[0]
            st.session_state["em_row"] = row_keys[r]
            st.session_state["em_col"] = col_keys[list(frame.columns).index(col)]

    if shape == "Bubbles":
        bubble_map(frame)
    else:
        st.dataframe(styled, key="em_table", on_select=picked, selection_mode="single-cell",
                     height=min(40 + 35 * len(frame), 600))
    st.caption(f"{views.AXIS_LABELS[rows]} × {views.AXIS_LABELS[cols]}: {int(numeric.count().sum())} of "
               f"{numeric.size} cells have evidence; an empty cell is a gap. Select a "
               f"{'bubble' if shape == 'Bubbles' else 'cell'}, or choose it below.")
    for key, keys in (("em_row", row_keys), ("em_col", col_keys)):
        if st.session_state.get(key) not in keys:
            st.session_state.pop(key, None)
    if "em_row" not in st.session_state or "em_col" not in st.session_state:
        r, cidx = divmod(int(numeric.fillna(0).to_numpy().argmax()), numeric.shape[1])
        st.session_state.setdefault("em_row", row_keys[r])
        st.session_state.setdefault("em_col", col_keys[cidx])
    a, b = st.columns(2)
    rk = a.selectbox(views.AXIS_LABELS[rows], row_keys, key="em_row", format_func=row_label.get)
    ck = b.selectbox(views.AXIS_LABELS[cols], col_keys, key="em_col", format_func=col_label.get)
    found = views.findings_first(kb.cell_passages(row_axis, rk, col_axis, ck, within))
    st.subheader(f"{len(found)} passages: {row_label[rk]} × {col_label[ck]}")
    if not found:
        st.info("A gap: no passage links these two.")
    labels = kb.labels()
    for p in found[:30]:
        with st.container(border=True):
            show_passage(kb, p, labels, f"em-{p.chunk_id}")
    if len(found) > 30:
        st.caption(f"Showing 30 of {len(found)}.")


def map_filter(docs: list) -> views.MapFilter:
    """The evidence map's filters: documents, years and kinds of document."""
    titles = {d.doc_id: d.title for d in docs}
    years = sorted({d.year for d in docs if d.year is not None})
    kinds = sorted({d.type for d in docs})
    with st.expander("Filter by document, year or type", expanded=False):
        a, b, c = st.columns([3, 2, 2])
        chosen = a.multiselect("Documents", list(titles), key="em_docs", format_func=titles.get,
                               placeholder="All documents")
        span = None
        if len(years) > 1:
            low, high = b.slider("Years", years[0], years[-1], (years[0], years[-1]), key="em_years")
            span = (low, high) if (low, high) != (years[0], years[-1]) else None
        types = c.multiselect("Types", kinds, key="em_types", format_func=views.type_label, placeholder="All types")
    return views.MapFilter(frozenset(chosen), span, frozenset(types))


def bubble_map(frame: pd.DataFrame) -> None:
    """The evidence map as the 3ie and EPPI-Mapper maps draw it: a bubble per cell sized by its passages,
    every row and column shown so that the gaps stand out; a click on a bubble lists its passages."""
    import altair as alt

    data = views.bubbles(frame)
    pick = alt.selection_point(name="cell", fields=["row_key", "col_key"])
    chart = alt.Chart(data).mark_circle(color="#2c7fb8", opacity=0.8).encode(
        x=alt.X("column:N", scale=alt.Scale(domain=list(frame.columns)), title=None,
                axis=alt.Axis(labelAngle=-40, labelLimit=0, labelOverlap=False, orient="top")),
        y=alt.Y("row:N", scale=alt.Scale(domain=list(frame.index)), title=None,
                axis=alt.Axis(labelLimit=0, labelOverlap=False)),
        size=alt.Size("passages:Q", scale=alt.Scale(range=[40, 1200]), title="passages"),
        tooltip=[alt.Tooltip("row:N", title="row"), alt.Tooltip("column:N", title="column"),
                 alt.Tooltip("passages:Q", title="passages")],
    ).add_params(pick).properties(width=alt.Step(42), height=alt.Step(42))
    event = st.altair_chart(chart, on_select="rerun", key="em_chart", width="content")
    chosen = (event.selection.get("cell") or []) if event and event.selection else []
    if chosen:
        st.session_state["em_row"], st.session_state["em_col"] = chosen[0]["row_key"], chosen[0]["col_key"]


# -- Places ------------------------------------------------------------------------------------------------
BASEMAP = Path(views.__file__).parent / "basemap" / "countries-50m.json"


@st.cache_data(show_spinner=False)
def basemap() -> dict:
    """The countries of Natural Earth (kb/ui/basemap/SOURCE.md), shipped so that no tile is fetched."""
    return json.loads(BASEMAP.read_text(encoding="utf-8"))


def place_map(points: pd.DataFrame, world: bool) -> None:
    """Places as circles sized by their evidence over a basemap drawn in the browser from shipped data."""
    import altair as alt

    shown = points if world else points[points["lon"].between(-9, 3) & points["lat"].between(49.5, 61)]
    spec = alt.Chart(shown).mark_circle(color="#1f6feb", opacity=0.55, stroke="#0b3d91", strokeWidth=0.5).encode(
        longitude="lon:Q", latitude="lat:Q",
        size=alt.Size("passages:Q", scale=alt.Scale(range=[15, 900]), title="passages"),
        tooltip=[alt.Tooltip("place:N", title="place"), alt.Tooltip("passages:Q", title="passages")]).to_dict()
    dots = {k: spec.pop(k) for k in ("data", "mark", "encoding")}
    # The borders as a plain layer: through Altair, its megabyte of coordinates took seconds to convert.
    land = {"data": {"values": basemap(), "format": {"type": "topojson", "feature": "countries"}},
            "mark": {"type": "geoshape", "fill": "#eef1f4", "stroke": "#9aa7b4", "strokeWidth": 0.6}}
    projection = ({"type": "equalEarth"} if world else
                  {"type": "mercator", "center": [-2.8, 54.6], "scale": 2100})
    spec.update(layer=[land, dots], projection=projection, height=620 if not world else 460)
    st.vega_lite_chart(spec, key="places_map", width="stretch")


def page_places() -> None:
    kb = get_kb()
    onto = kb.ontology
    counts = kb.link_counts()
    st.title("Places")
    points = pd.DataFrame(views.place_points(onto, counts))
    if points.empty:
        st.info("No places with coordinates in the ontology yet.")
    else:
        world = st.toggle("The whole world", key="places_world", help="Off: the United Kingdom")
        place_map(points, world)
        st.caption("Circles grow with the number of passages about a place (and the places within it). "
                   "Borders: Natural Earth, drawn here with no network.")
    places = sorted(onto.in_scheme("places"), key=lambda c: (-sum(counts.get(x, 0) for x in onto.narrower_closure(c.id)), c.label))
    if not places:
        return
    pid = st.selectbox("Place", [c.id for c in places], key="place", format_func=lambda i: onto.label(i))
    c = onto.concepts[pid]
    within = onto.narrower_closure(pid)
    st.header(c.label)
    if c.definition:
        st.markdown(esc(c.definition))
    inits = views.initiatives_for(onto, pid)
    st.subheader(f"Initiatives ({len(inits)})")
    if not inits:
        st.caption("No initiatives recorded for this place in the ontology.")
    # One line each, in a box that scrolls when there are many (London has dozens).
    with st.container(border=True, height=420 if len(inits) > 8 else "content"):
        for i in inits:
            st.markdown(f"**{esc(i.label)}**" + (f" · {esc(i.date)}" if i.date else "")
                        + (f" — {esc(i.description)}" if i.description else ""))
            extra = [x for x in (i.programme, i.issue) if x] + (
                ["concepts: " + ", ".join(onto.label(x) for x in i.concepts)] if i.concepts else [])
            if extra:
                st.caption(esc(" · ".join(extra)))
    found, total = kb.linked_passages(within, limit=30)
    st.subheader(f"{total} passages about {c.label}" + (" and places within it" if len(within) > 1 else ""))
    st.button(f"Ask about {c.label}", on_click=go, args=("ask",), kwargs={"f_place": c.label})
    labels = kb.labels()
    for p in found[:30]:
        with st.container(border=True):
            show_passage(kb, p, labels, f"pl-{p.chunk_id}")


# -- Library -------------------------------------------------------------------------------------------------
def page_library() -> None:
    kb = get_kb()
    st.title("Library")
    docs = kb.documents()
    frame = pd.DataFrame([{**d.to_json(), "authors": ", ".join(d.authors)} for d in docs],
                         columns=["title", "authors", "year", "type", "pages", "passages", "doc_id", "publisher"])
    st.dataframe(frame, hide_index=True, column_config={"year": st.column_config.NumberColumn(format="%d")})
    st.caption(f"{len(docs)} documents, {sum(d.passages for d in docs)} passages, in {kb.settings.home}")

    st.subheader("Add a document")
    if not may_change(kb):
        sign_in_box(kb, "add documents")
        return
    st.caption(f"PDF, Word (.docx), text, Markdown or HTML, up to {kb.settings.max_file_mb} MB. It is saved under "
               f"{kb.settings.uploads_dir} and ingested like the shipped documents: searchable at once.")
    up = st.file_uploader("Upload", type=list(uploads.UPLOAD_TYPES), key="upload",
                          max_upload_size=kb.settings.max_file_mb)
    done: dict = st.session_state.setdefault("uploads_done", {})
    if up is not None and up.file_id not in done:
        with st.status(f"Ingesting {up.name}…", expanded=True) as status:
            bar = st.progress(0.0, text="Saving")

            def step(name: str, n: int, total: int) -> None:
                bar.progress(min(1.0, (n + 0.5) / max(total, 1)) if name else 1.0,
                             text=f"Reading, embedding and linking {name}" if name else "Updating the search index")

            outcome = uploads.ingest_upload(kb, up.name, up.getvalue(), on_progress=step)
            bar.progress(1.0, text="Done")
            status.update(label=f"{up.name}: " + ("ingested" if outcome.ok else "could not be ingested"),
                          state="complete" if outcome.ok else "error", expanded=False)
        done[up.file_id] = outcome
        note_change(kb, "upload", f"{up.name} → {outcome.doc_id}" if outcome.ok else f"{up.name} (refused)")
        st.session_state.pop("_answer", None)
    if up is not None:
        outcome = done[up.file_id]
        if outcome.ok:
            st.success(esc(f"{outcome.name} is in the knowledge base as '{outcome.doc_id}' "
                           f"({outcome.passages} passages) and searchable now."))
        else:
            reasons = [ln.split(": ", 1)[-1] for ln in outcome.errors if ln.startswith("FAILED")] or outcome.errors
            st.error(esc(f"{outcome.name} could not be ingested: " + "; ".join(reasons)))
        st.code("\n".join(outcome.lines + outcome.errors), language=None)


# -- Evaluation -------------------------------------------------------------------------------------------------
COMMITTED_REPORTS = {"RESULTS.md": "recall.png", "HELDOUT.md": "heldout-recall.png", "FRESH.md": "fresh-recall.png",
                     "FOURTH.md": "fourth-recall.png"}  # in evals/, with their plots
GOLD_SETS = {"Shipped (evals/gold.jsonl)": "gold.jsonl", "Held-out (evals/heldout.jsonl)": "heldout.jsonl",
             "Fresh (evals/fresh.jsonl)": "fresh.jsonl", "Fourth (evals/fourth.jsonl)": "fourth.jsonl"}


MEASURES = """
- **R@k (recall at k)**: the share of questions whose evidence is among the first *k* passages found.
- **MRR**: how high the first passage with the evidence ranks, on average (1 = always first, 0.5 = second).
- **nDCG**: like MRR, but every passage with evidence counts, the higher the better.
- **judged**: the same, counting passages that readers judged to answer the question besides the gold evidence.
- **chars@5**: how much text the first five passages hold (shorter reads faster).
- **quote exactness**: the share of quotes that are word for word the document's text at their offsets.
- **page accuracy**: the share of quotes cited with the page they begin on.
- **citation precision**: the share of an answer's claims that the passage they cite supports.
- **readers' grades**: whole answers judged full, partial or no by readers who saw no scores (evals/ANSWER-JUDGING.md).
- **answer lint**: answers showing a defect a reader trips over (a heading quoted, a "This…" without its sentence, …).
"""
ANSWER_LABELS = {"quote_exactness": "quote exactness", "page_accuracy": "page accuracy",
                 "citation_precision": "citation precision", "citation_recall": "citation recall",
                 "answered_rate": "answerable questions answered", "honest_no_answer_rate": "no-answer questions declined",
                 "latency_p50_ms": "kb ask p50 (ms)"}


def show_report(folder: Path, title: str) -> bool:
    """The report of the last run, as tables and its plot; the Markdown to download."""
    data = None
    rj = folder / "report.json"
    if rj.exists():
        try:
            data = json.loads(rj.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
    md = folder / "report.md"
    pngs = sorted(folder.glob("*.png"))
    if data is None and not md.exists() and not pngs:
        return False
    st.subheader(title)
    if data:
        st.caption(esc(f"{data.get('created', '')} · gold {data.get('gold', '')} · {data.get('questions', '?')} questions "
                       f"({data.get('answerable', '?')} answerable) · {data.get('duration_s', '?')} s"))
        retrieval = data.get("retrieval") or {}
        if retrieval:
            st.markdown("**Finding the evidence**, by search mode")
            rows = []
            for mode, r in retrieval.items():
                row = {"mode": r.get("label", mode)}
                row.update({f"R@{k}": v for k, v in (r.get("recall") or {}).items()})
                row.update({"MRR": r.get("mrr"), "nDCG": r.get("ndcg"), "chars@5": r.get("avg_chars"),
                            "p50 ms": r.get("latency_p50_ms")})
                # Counting the passages judged to answer besides the gold evidence (GOLD.judged.jsonl).
                row.update({f"R@{k} judged": v for k, v in (r.get("pooled_recall") or {}).items()})
                if r.get("pooled_mrr") is not None:
                    row["MRR judged"] = r["pooled_mrr"]
                rows.append(row)
            st.dataframe(pd.DataFrame(rows), hide_index=True)
        answers = data.get("answers")
        if answers:
            st.markdown("**Answers**")
            st.dataframe(pd.DataFrame([{"measure": label, "value": answers.get(key)}
                                       for key, label in ANSWER_LABELS.items() if key in answers]), hide_index=True)
            for name, heading in (("graded", "Readers' grades"), ("lint", "Answer lint")):
                if answers.get(name):
                    st.markdown(f"**{heading}**")
                    st.dataframe(pd.DataFrame([answers[name]]), hide_index=True)
    for png in pngs:
        st.image(str(png), caption=png.name)
    if md.exists():
        st.download_button("Download the report (Markdown)", md.read_bytes(), file_name="report.md",
                           mime="text/markdown", key=f"download_{folder.name}")
    return True


def run_controls(kb, out: Path, repo: Path) -> None:
    """Choose a question set and run the evaluation, with its progress."""
    source = st.radio("Gold set", [*GOLD_SETS, "Upload a JSONL file"], key="eval_source", horizontal=True)
    gold_path: Path | None = repo / GOLD_SETS[source] if source in GOLD_SETS else None
    if source not in GOLD_SETS:
        gold = st.file_uploader("Gold questions (JSONL, one object per line with 'question' and 'evidence')",
                                type=["jsonl", "json"], key="eval_gold")
        if gold is not None:
            folder = kb.settings.home / "eval-gold"
            folder.mkdir(parents=True, exist_ok=True)
            gold_path = folder / uploads.safe_filename(gold.name)
            gold_path.write_bytes(gold.getvalue())
    baseline = st.checkbox("Include the llama-index baseline (slower)", value=True, key="eval_baseline")
    if st.button("Run evaluation", type="primary", disabled=gold_path is None):
        try:
            from kb.evals.run import run_evaluation  # llama-index loads only when an evaluation runs
        except Exception as exc:  # the evaluation module is optional for the rest of the app
            st.error(esc(f"The evaluation is not available: {exc}"))
            return
        bar = st.progress(0.0, text="Starting")

        def step(done: int, total: int, label: str) -> None:
            bar.progress(min(1.0, done / max(total, 1)), text=label)

        try:
            with st.spinner("Evaluating…"):
                report = run_evaluation(kb, gold_path, out, baseline=baseline, progress=step)
        except Exception as exc:  # a bad gold file or an unfinished evaluator must not break the app
            st.error(esc(f"The evaluation failed: {exc}"))
            return
        bar.progress(1.0, text="Done")
        note_change(kb, "evaluation", str(gold_path))
        st.success(esc(f"Report written to {out}"))
        st.code(report.summary(), language=None)
        st.rerun()


def page_evaluation() -> None:
    kb = get_kb()
    st.title("Evaluation")
    st.caption("Gold questions in; how well search finds the evidence and how well answers quote it, out.")
    out = kb.settings.home / "eval"
    repo = PROJECT_ROOT / "evals"
    st.subheader("Run the evaluation")
    if may_change(kb):
        run_controls(kb, out, repo)
    else:
        sign_in_box(kb, "run evaluations")
    shown = show_report(out, f"Latest report ({out})")
    committed = {name: plot for name, plot in COMMITTED_REPORTS.items() if (repo / name).exists()}
    for name, plot in committed.items():
        with st.expander(f"Committed results (evals/{name})", expanded=not shown and name == "RESULTS.md"):
            # The project's own reports, written by `kb eval`: Markdown shown as a page, never raw HTML.
            st.markdown((repo / name).read_text(encoding="utf-8"))
            if (repo / plot).exists():
                st.image(str(repo / plot), caption=plot)
    if not committed and not shown:
        st.info("No evaluation report yet: run one above (or `kb eval`).")
    with st.expander("What the measures mean", expanded=not shown):
        st.markdown(MEASURES)


def page_ask_by_name() -> None:
    """The Ask page at /ask as well: Streamlit serves the default page only at /."""
    page_ask()


# -- the app ----------------------------------------------------------------------------------------------------
PAGES = {
    "ask": st.Page(page_ask, title="Ask", icon=":material/chat:", default=True),
    "browse": st.Page(page_browse, title="Browse", icon=":material/account_tree:", url_path="browse"),
    "evidence": st.Page(page_evidence, title="Evidence map", icon=":material/grid_on:", url_path="evidence-map"),
    "places": st.Page(page_places, title="Places", icon=":material/place:", url_path="places"),
    "library": st.Page(page_library, title="Library", icon=":material/library_books:", url_path="library"),
    "evaluation": st.Page(page_evaluation, title="Evaluation", icon=":material/analytics:", url_path="evaluation"),
}


ALIASES = [st.Page(page_ask_by_name, title="Ask", icon=":material/chat:", url_path="ask", visibility="hidden")]


def main() -> None:
    nav = st.navigation(list(PAGES.values()) + ALIASES)
    goto = st.session_state.pop("goto", None)
    if goto in PAGES:
        st.switch_page(PAGES[goto])
    kb = get_kb()
    try:
        ensure_ingested(kb)
        kb.warm_up_in_background()  # `kb app` started it already; `streamlit run app.py` starts it here
        with st.sidebar:
            n_docs, n_passages = kb.counts()
            st.caption(f"{n_docs} documents · {n_passages} passages")
            account(kb)
        nav.run()
    except (GraphServerError, StoreBusy) as exc:  # a graph server that is down, a store held too long
        st.error(esc(f"{exc}. Reload the page once it is back."))


main()
