"""One Markdown escape for every user-controlled string (class names, file names, CSV cells, messages quoting them)
that reaches Markdown: the app's pages and widget labels, and the CV report.md.

Backslash escapes stop images, links, tags and directives, but not GFM's auto-links: remark-gfm finds
`http://…`, `www.…` and `a@b.c` in the text *after* escapes are decoded. So a WORD JOINER (U+2060, invisible,
no line break) is put inside those three patterns: the text looks the same and no link is made.
"""

from __future__ import annotations

import re

# every character GFM or Streamlit's directives give a meaning (':' for `:red[x]` / `:material/x:` directives); all
# are ASCII punctuation, which CommonMark lets a backslash escape
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:@&=\"'^%])")
JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)  # where GFM's auto-link patterns break


def md_escape(text: object) -> str:
    """`text` as Markdown that renders literally, on one line (no tag, link, auto-link, image, table cell or heading)."""
    line = _AUTOLINK.sub(JOINER, " ".join(str(text).replace(JOINER, "").splitlines()))
    return _MD_SPECIAL.sub(r"\\\1", line)
