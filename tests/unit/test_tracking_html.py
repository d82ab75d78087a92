"""Body instrumentation (SPEC T1, T2, T3): every web link tracked, the pixel in place, and
not one other byte of the markup changed."""

from __future__ import annotations

import re

from crmsync.tracking.html import instrument_html, instrument_text, pixel_tag

TRACK = "https://t.crmsync.example/t/"
PIXEL = "https://t.crmsync.example/t/o/TOKEN.gif"


def tracked(url: str) -> str:
    return f"{TRACK}c/<{url}>"


def untracked_parts(original: str, result: str) -> tuple[str, str]:
    """Both documents with every href value and the pixel taken out: what must not change."""
    strip_href = re.compile(r"""(href\s*=\s*)("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
    return (
        strip_href.sub(r"\1X", original),
        strip_href.sub(r"\1X", result.replace(pixel_tag(PIXEL), "")),
    )


NEWSLETTER = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Q3 &amp; pricing</title></head>
<body style="margin:0">
<p>Hello Ann,</p>
<p>See <a href="https://acme.example/pricing?plan=pro&amp;seats=5" rel="noopener">our prices</a>
and <A HREF='http://acme.example/blog'>the blog</A>, or
<a class="btn" href=https://acme.example/demo target=_blank>book a demo</a>.</p>
<p><a href="mailto:sales@acme.example">Mail us</a> - <a href="tel:+4930123">call us</a> -
<a href="#top">top</a> - <a name="anchor">anchor</a> - <a href="/relative">relative</a></p>
<p><a title="a href=https://not-a-link.example inside a title" href="https://acme.example/t">t</a></p>
<!-- <a href="https://commented.example/">old link</a> -->
<p><a href="https://t.crmsync.example/t/c/ALREADY">already tracked</a></p>
<p><a
   href="https://acme.example/multi-line"
   >multi-line tag</a></p>
</body>
</html>
"""


def test_every_web_link_is_rewritten_and_nothing_else() -> None:
    result = instrument_html(NEWSLETTER, open_url=None, click_url=tracked, tracked_prefix=TRACK)

    assert (
        'href="https://t.crmsync.example/t/c/&lt;https://acme.example/pricing?plan=pro&amp;seats=5&gt;"'
        in result
    )
    assert "HREF='https://t.crmsync.example/t/c/&lt;http://acme.example/blog&gt;'" in result
    assert 'href="https://t.crmsync.example/t/c/&lt;https://acme.example/demo&gt;"' in result
    assert 'href="https://t.crmsync.example/t/c/&lt;https://acme.example/t&gt;"' in result
    assert 'href="https://t.crmsync.example/t/c/&lt;https://acme.example/multi-line&gt;"' in result
    for kept in (
        'href="mailto:sales@acme.example"',
        'href="tel:+4930123"',
        'href="#top"',
        'href="/relative"',
        '<a name="anchor">',
        'title="a href=https://not-a-link.example inside a title"',
        '<!-- <a href="https://commented.example/">old link</a> -->',
        'href="https://t.crmsync.example/t/c/ALREADY"',
    ):
        assert kept in result, kept
    assert result.count("/t/c/&lt;") == 5
    before, after = untracked_parts(NEWSLETTER, result)
    assert before == after


def test_entities_in_href_are_decoded_before_signing() -> None:
    seen: list[str] = []

    def record(url: str) -> str:
        seen.append(url)
        return "https://t.example/t/c/x"

    instrument_html(
        '<a href="https://a.example/?a=1&amp;b=2&#38;c=3">x</a>', open_url=None, click_url=record
    )

    assert seen == ["https://a.example/?a=1&b=2&c=3"]


def test_pixel_goes_before_the_last_closing_body() -> None:
    result = instrument_html(NEWSLETTER, open_url=PIXEL, click_url=None)

    assert result == NEWSLETTER.replace("</body>", pixel_tag(PIXEL) + "</body>")
    assert pixel_tag(PIXEL) == (
        '<img src="https://t.crmsync.example/t/o/TOKEN.gif" width="1" height="1" alt="" '
        'style="display:none">'
    )


def test_pixel_without_a_body_tag_goes_at_the_end() -> None:
    fragment = "<p>Hi <b>Ann</b></p>"

    assert instrument_html(fragment, open_url=PIXEL, click_url=None) == fragment + pixel_tag(PIXEL)


def test_pixel_matches_body_case_insensitively_and_keeps_the_tag() -> None:
    result = instrument_html("<BODY>x</BODY >\n", open_url=PIXEL, click_url=None)

    assert result == f"<BODY>x{pixel_tag(PIXEL)}</BODY >\n"


def test_no_pixel_and_no_click_rewriting_changes_nothing() -> None:
    assert instrument_html(NEWSLETTER, open_url=None, click_url=None) == NEWSLETTER


def test_a_quote_in_the_tracked_url_is_escaped() -> None:
    result = instrument_html(
        "<a href=x>y</a><a href='https://a.example'>z</a>",
        open_url=None,
        click_url=lambda url: 'https://t.example/"evil"',
    )

    assert result == "<a href=x>y</a><a href='https://t.example/&quot;evil&quot;'>z</a>"


def test_abbr_and_area_tags_are_not_anchors() -> None:
    html = '<abbr href="https://a.example">a</abbr><address>https://b.example</address>'

    assert instrument_html(html, open_url=None, click_url=tracked) == html


def test_plain_text_urls_are_rewritten_without_trailing_punctuation() -> None:
    text = (
        "Prices: https://acme.example/pricing?plan=pro.\n"
        "Wiki (https://en.wikipedia.org/wiki/Foo_(bar)), docs <https://docs.example/a>,\n"
        "mail sales@acme.example, site http://acme.example!\n"
        "already https://t.crmsync.example/t/c/ALREADY and ftp://files.example/x"
    )

    result = instrument_text(text, tracked, tracked_prefix=TRACK)

    assert result == (
        "Prices: https://t.crmsync.example/t/c/<https://acme.example/pricing?plan=pro>.\n"
        "Wiki (https://t.crmsync.example/t/c/<https://en.wikipedia.org/wiki/Foo_(bar)>), "
        "docs <https://t.crmsync.example/t/c/<https://docs.example/a>>,\n"
        "mail sales@acme.example, site https://t.crmsync.example/t/c/<http://acme.example>!\n"
        "already https://t.crmsync.example/t/c/ALREADY and ftp://files.example/x"
    )


def test_text_without_urls_is_unchanged() -> None:
    text = "No links here: just http:// and https:/broken."

    assert instrument_text(text, tracked) == text
