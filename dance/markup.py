"""One Markdown escape for every user-controlled string (class names, file names, CSV cells, messages quoting them)
that reaches Markdown: the app's pages and widget labels, and the CV report.md."""

from __future__ import annotations

import re

# every character GFM or Streamlit's directives give a meaning: ':' and '@' too, or `http://x` and `a@b.c` become
# auto-links (with the escapes' backslashes inside them) and `:red[x]` / `:material/x:` directives; all are ASCII
# punctuation, which CommonMark lets a backslash escape
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:@&=\"'^%])")


def md_escape(text: object) -> str:
    """`text` as Markdown that renders literally, on one line (no tag, link, image, table cell or heading)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))
