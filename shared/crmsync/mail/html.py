"""What a mail view shows of a received message: sanitised HTML, text, and the snippet.

HTML goes through nh3 (html5ever + ammonia, linear time), so hostile or broken markup never
reaches a browser and never costs more than one pass over the input.
"""

from __future__ import annotations

import re
from html import unescape

import nh3

__all__ = ["SNIPPET_LENGTH", "html_to_text", "sanitise_html", "snippet"]

SNIPPET_LENGTH = 200

_DISPLAY_TAGS = frozenset(
    {
        *("a", "abbr", "address", "article", "b", "big", "blockquote", "br", "caption"),
        *("center", "cite", "code", "col", "colgroup", "dd", "del", "div", "dl", "dt", "em"),
        *("figcaption", "figure", "font", "footer", "h1", "h2", "h3", "h4", "h5", "h6"),
        *("header", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s"),
        *("section", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody"),
        *("td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "wbr"),
    }
)
_CELL = frozenset({"align", "valign", "width", "height", "bgcolor", "colspan", "rowspan", "nowrap"})
_DISPLAY_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"title", "dir", "lang", "align"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height", "border"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor"},
    "tr": {"valign", "bgcolor"},
    "td": set(_CELL),
    "th": set(_CELL),
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type"},
    "ul": {"type"},
    "hr": {"width", "size"},
}
# Elements dropped with everything inside them: their content is code, not text.
_DROP_CONTENT = frozenset(
    {"script", "style", "title", "iframe", "frame", "frameset", "object", "embed", "applet"}
    | {"svg", "math", "template", "noembed", "noframes", "select", "textarea", "button"}
)
_URL_SCHEMES = frozenset({"http", "https", "mailto", "cid", "data"})
_HREF = re.compile(r"(?:https?|mailto):", re.IGNORECASE)
_SRC = re.compile(r"(?:https?:|cid:|data:image/(?:png|jpe?g|gif|webp|bmp);)", re.IGNORECASE)

_BREAK_TAGS = frozenset({"br", "div", "tr", "li", "dt", "dd", "hr", "pre", "h1", "h2", "h3"})
_PARAGRAPH_TAGS = frozenset({"p", "table", "ul", "ol", "dl", "h4", "h5", "h6", "blockquote"})
_CELL_TAGS = frozenset({"td", "th"})
_TEXT_TAGS = _BREAK_TAGS | _PARAGRAPH_TAGS | _CELL_TAGS
_TAG = re.compile(r"(<[^>]*>)")
_SPACES = re.compile(r"[ \t\r\n\f\v\xa0]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_ATTRIBUTION = re.compile(
    r"(?:wrote|schrieb|a écrit|escribió|ha scritto|schreef|skrev|napisał)\s*:$", re.IGNORECASE
)


def _url_filter(tag: str, attribute: str, value: str) -> str | None:
    """Per-attribute scheme rules nh3's one global scheme list cannot express."""
    if attribute == "href":
        return value if _HREF.match(value.strip()) else None
    if attribute == "src":
        return value if tag == "img" and _SRC.match(value.strip()) else None
    return value


def sanitise_html(html: str) -> str:
    """Markup safe to render: no scripts, frames, forms, styles or event handlers.

    `cid:` image sources survive (the API rewrites them to attachment URLs), links may only
    point to http(s) or mailto and open with rel="noopener noreferrer"."""
    return nh3.clean(
        html,
        tags=set(_DISPLAY_TAGS),
        clean_content_tags=set(_DROP_CONTENT),
        attributes=_DISPLAY_ATTRIBUTES,
        attribute_filter=_url_filter,
        url_schemes=set(_URL_SCHEMES),
        url_relative="deny",
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: tags gone, entities decoded, block elements on their
    own lines, and blockquoted replies prefixed with "> " like a plain-text quote."""
    cleaned = nh3.clean(
        html,
        tags=set(_TEXT_TAGS),
        clean_content_tags=set(_DROP_CONTENT),
        attributes={},
        link_rel=None,
        strip_comments=True,
    )
    lines: list[str] = []
    current: list[str] = []
    depth = 0

    def flush(paragraph: bool) -> None:
        text = _SPACES.sub(" ", "".join(current)).strip()
        current.clear()
        if text:
            lines.append("> " * depth + text)
        if paragraph and lines and lines[-1]:
            lines.append("")

    for position, token in enumerate(_TAG.split(cleaned)):
        if position % 2 == 0:
            if token:
                current.append(unescape(token))
            continue
        name = token.strip("</>").split(maxsplit=1)[0].lower() if token.strip("</>") else ""
        if name in _CELL_TAGS:
            current.append(" ")
            continue
        flush(name in _PARAGRAPH_TAGS)
        if name == "blockquote":
            depth = max(depth - 1, 0) if token.startswith("</") else depth + 1
    flush(False)
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def snippet(text: str) -> str:
    """The first SNIPPET_LENGTH characters to preview, skipping quoted reply lines."""
    lines = text.splitlines()
    return _collect(lines, skip_quotes=True) or _collect(lines, skip_quotes=False)


def _collect(lines: list[str], *, skip_quotes: bool) -> str:
    kept: list[str] = []
    length = 0
    for position, line in enumerate(lines):
        words = line.split()
        if not words:
            continue
        if skip_quotes and (words[0].startswith(">") or _attribution(lines, position)):
            continue
        kept.append(" ".join(words))
        length += len(kept[-1]) + 1
        if length > SNIPPET_LENGTH:
            break
    return " ".join(kept)[:SNIPPET_LENGTH]


def _attribution(lines: list[str], position: int) -> bool:
    """Whether this is the "On <date>, <someone> wrote:" line that opens a quote."""
    if not _ATTRIBUTION.search(lines[position].strip()):
        return False
    following = (lines[i].strip() for i in range(position + 1, len(lines)))
    return next((line for line in following if line), "").startswith(">")
