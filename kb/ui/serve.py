"""Serve the Streamlit app, warming the knowledge base up while the server boots.

``streamlit run app.py`` loads the model only when the first browser connects; started this
way (``kb app`` does), the model and indexes load while Streamlit starts and the browser opens.
Usage: ``python -m kb.ui.serve [streamlit run options]``.
"""

from __future__ import annotations

import sys

from streamlit.web.cli import main as streamlit

from kb.config import PROJECT_ROOT
from kb.knowledge import shared

APP = PROJECT_ROOT / "app.py"
# A tool for readers, not a development server: no Deploy button or developer menu, no watching the
# repository for changes, no usage statistics. Options given after these override them.
OPTIONS = ["--client.toolbarMode", "viewer", "--server.fileWatcherType", "none", "--server.runOnSave", "false",
           "--browser.gatherUsageStats", "false"]


def main(argv: list[str] | None = None) -> None:
    kb = shared()
    if not kb.is_empty():
        kb.warm_up_in_background()
    sys.argv = ["streamlit", "run", str(APP), *OPTIONS, *(sys.argv[1:] if argv is None else argv)]
    streamlit()


if __name__ == "__main__":
    main()
