"""HTML that users write for others to read: template and signature bodies.

Cleaned when saved with the policy of received mail (crmsync.mail.html: no scripts, frames,
forms, `<style>` blocks or event handlers; links only http(s)/mailto; images only
http(s)/cid/data:image), plus inline `style` attributes limited to layout and typography
properties, since e-mail is styled inline. A company template is shown to colleagues in the
CRM, so what it holds must be safe to display there.
"""

from __future__ import annotations

import nh3

from crmsync.mail.html import (
    _DISPLAY_ATTRIBUTES,
    _DISPLAY_TAGS,
    _DROP_CONTENT,
    _URL_SCHEMES,
    _url_filter,
)

__all__ = ["STYLE_PROPERTIES", "clean_authored_html"]

STYLE_PROPERTIES = frozenset(
    {
        *("color", "background", "background-color", "opacity", "display", "visibility"),
        *("font", "font-family", "font-size", "font-style", "font-weight", "font-variant"),
        *("text-align", "text-decoration", "text-indent", "text-transform", "letter-spacing"),
        *("line-height", "white-space", "word-break", "word-spacing", "vertical-align"),
        *("width", "height", "min-width", "max-width", "min-height", "max-height"),
        *("margin", "margin-top", "margin-right", "margin-bottom", "margin-left"),
        *("padding", "padding-top", "padding-right", "padding-bottom", "padding-left"),
        *("border", "border-top", "border-right", "border-bottom", "border-left"),
        *("border-color", "border-style", "border-width", "border-radius", "border-collapse"),
        *("border-spacing", "list-style", "list-style-type", "table-layout", "float", "clear"),
    }
)


def clean_authored_html(html: str) -> str:
    """Markup safe to display in the CRM and to send; smart fields (`{{…}}`) stay as text
    (in an attribute, only inside a kept value such as an http(s) link)."""
    attributes = {tag: set(names) for tag, names in _DISPLAY_ATTRIBUTES.items()}
    attributes["*"] = {*attributes["*"], "style"}
    return nh3.clean(
        html,
        tags=set(_DISPLAY_TAGS),
        clean_content_tags=set(_DROP_CONTENT),
        attributes=attributes,
        attribute_filter=_url_filter,
        url_schemes=set(_URL_SCHEMES),
        url_relative="deny",
        link_rel="noopener noreferrer",
        strip_comments=True,
        filter_style_properties=set(STYLE_PROPERTIES),
    )
