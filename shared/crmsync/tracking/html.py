"""Rewriting a message body for tracking: http(s) links to click URLs, plus the open pixel.

Only what tracking needs changes; every other byte of the markup stays as it was. The HTML
is scanned for comments (left alone) and `<a>` start tags, whose attributes are read with
their quoting, so an `href=` inside another attribute's value is never taken for a link.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable

ClickUrl = Callable[[str], str]

_MARKUP = re.compile(
    r"<!--.*?-->"  # comments: copied as they are
    r"|<a(?=[\s/>])(?:[^>\"']|\"[^\"]*\"|'[^']*')*>",  # an <a> start tag, quotes respected
    re.IGNORECASE | re.DOTALL,
)
_ATTRIBUTE = re.compile(
    r"(?P<space>[\s/]+)(?P<name>[^\s\"'>/=]+)"
    r"(?:(?P<eq>\s*=\s*)(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^\s>]+)))?"
)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_TEXT_URL = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\u2019\u201d"
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def is_web_url(url: str) -> bool:
    return url[:8].lower().startswith(("http://", "https://"))


def pixel_tag(open_url: str) -> str:
    src = html_lib.escape(open_url, quote=True)
    return f'<img src="{src}" width="1" height="1" alt="" style="display:none">'


def instrument_html(
    html: str,
    *,
    open_url: str | None,
    click_url: ClickUrl | None,
    tracked_prefix: str | None = None,
) -> str:
    """Every http(s) `href` of an `<a>` through `click_url` (mailto:, tel:, anchors and
    links starting with `tracked_prefix` stay), and the pixel before `</body>` (or at the
    end) when `open_url` is given."""
    if click_url is not None:
        rewrite = click_url

        def tag(match: re.Match[str]) -> str:
            text = match.group(0)
            return (
                text if text.startswith("<!--") else _rewrite_anchor(text, rewrite, tracked_prefix)
            )

        html = _MARKUP.sub(tag, html)
    if open_url is None:
        return html
    pixel = pixel_tag(open_url)
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + pixel
    at = ends[-1].start()
    return html[:at] + pixel + html[at:]


def _rewrite_anchor(tag: str, click_url: ClickUrl, tracked_prefix: str | None) -> str:
    inner_start, inner_end = 2, len(tag) - 1  # after "<a", before ">"
    for attr in _ATTRIBUTE.finditer(tag, inner_start, inner_end):
        if attr.group("name").lower() != "href" or attr.group("eq") is None:
            continue
        if attr.group("dq") is not None:
            kind = "dq"
        elif attr.group("sq") is not None:
            kind = "sq"
        else:
            kind = "bare"
        raw = attr.group(kind)
        url = html_lib.unescape(raw).strip()
        if not is_web_url(url) or (tracked_prefix and url.startswith(tracked_prefix)):
            return tag
        quote = "'" if kind == "sq" else '"'
        value = html_lib.escape(click_url(url), quote=True)
        start, end = attr.start(kind), attr.end(kind)
        if kind == "bare":
            return f"{tag[:start]}{quote}{value}{quote}{tag[end:]}"
        return f"{tag[:start]}{value}{tag[end:]}"
    return tag


def instrument_text(text: str, click_url: ClickUrl, tracked_prefix: str | None = None) -> str:
    """Bare http(s) URLs of a plain-text body through `click_url`. Punctuation that ends a
    sentence, and a closing bracket without its opening one, stay outside the link."""

    def link(match: re.Match[str]) -> str:
        url, tail = _split_trailing(match.group(0))
        if tracked_prefix and url.startswith(tracked_prefix):
            return match.group(0)
        return click_url(url) + tail

    return _TEXT_URL.sub(link, text)


def _split_trailing(url: str) -> tuple[str, str]:
    end = len(url)
    while end > 0:
        last = url[end - 1]
        if last in _TRAILING or (
            last in _CLOSERS and url[:end].count(last) > url[:end].count(_CLOSERS[last])
        ):
            end -= 1
        else:
            break
    if end <= url.index("://") + 3:
        return url, ""
    return url[:end], url[end:]
