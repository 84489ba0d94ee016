"""`python -m dance.ui.serve [streamlit options]`: `streamlit run app.py`, warmed up.

The first page needs torch and the backend (about 2 s of imports on a 2-core CPU). A plain `streamlit run`
imports them only once a browser has connected; here a background thread imports them while the server
boots and the browser loads the page's JavaScript, so the first page appears sooner (bench/speed.md).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app.py"


def _warm_imports() -> None:
    """Import the Predict page's modules (and with them torch and the backend) into this process."""
    try:
        import dance.ui.pages.predict  # noqa: F401  (only defines functions; its script runs per session)
    except Exception:  # noqa: BLE001  the page reports any problem itself, with a readable message
        pass


def main() -> None:
    """Start the import thread, then hand over to Streamlit's own command line."""
    from streamlit.web import cli

    threading.Thread(target=_warm_imports, name="dance-warm-imports", daemon=True).start()
    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:]]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
