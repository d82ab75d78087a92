"""Where in HTML a smart field may be filled: markup is never built from data.

The renderer feeds the template's own literal text through `HtmlPosition` and asks, at each
field, whether a value may go there. Yes only in element text and inside a quoted attribute
value: there an HTML-escaped value is text and cannot end the element or the attribute.
Everywhere else (a tag or attribute name, an unquoted attribute value, a comment or
declaration, the content of `<script>`, `<style>` and other raw-text elements) a value could
turn into markup or code, so the field renders empty.

The tracker follows the HTML tokenizer closely enough to err one way only: where it is
unsure (comments, odd tags) it reports a position where nothing is filled.
"""

from __future__ import annotations

from enum import Enum, auto

RAW_TEXT_ELEMENTS = frozenset(
    {"script", "style", "xmp", "iframe", "noembed", "noframes", "noscript", "plaintext"}
    | {"textarea", "title"}
)
"""Elements whose content the browser does not parse as markup (or, for textarea and title,
reads as text); a field inside them renders empty."""

_SPACE = " \t\n\r\f"


class _State(Enum):
    TEXT = auto()
    LESS_THAN = auto()  # after "<"
    END_SLASH = auto()  # after "</"
    TAG_NAME = auto()
    TAG = auto()  # between attributes
    BEFORE_VALUE = auto()  # after "="
    UNQUOTED = auto()
    DOUBLE_QUOTED = auto()
    SINGLE_QUOTED = auto()
    DECLARATION = auto()  # <!…>, <?…>, </ …>: ends at ">"
    RAW = auto()  # inside a raw-text element
    RAW_END = auto()  # "</" + name seen inside a raw-text element


_FILLABLE = frozenset({_State.TEXT, _State.DOUBLE_QUOTED, _State.SINGLE_QUOTED})


class HtmlPosition:
    """The tokenizer state after the literal text fed so far."""

    def __init__(self) -> None:
        self._state = _State.TEXT
        self._name: list[str] = []
        self._closing = False
        self._raw_name = ""

    @property
    def fillable(self) -> bool:
        return self._state in _FILLABLE

    def feed(self, text: str) -> None:
        position, end = 0, len(text)
        while position < end:
            state = self._state
            # Jump over runs that cannot change the state.
            if state is _State.TEXT:
                found = text.find("<", position)
                if found < 0:
                    return
                self._state, position = _State.LESS_THAN, found + 1
                continue
            if state is _State.DOUBLE_QUOTED or state is _State.SINGLE_QUOTED:
                quote = '"' if state is _State.DOUBLE_QUOTED else "'"
                found = text.find(quote, position)
                if found < 0:
                    return
                self._state, position = _State.TAG, found + 1
                continue
            if state is _State.DECLARATION:
                found = text.find(">", position)
                if found < 0:
                    return
                self._state, position = _State.TEXT, found + 1
                continue
            if state is _State.RAW:
                found = text.find("</", position)
                if found < 0:
                    return
                self._state, self._name, position = _State.RAW_END, [], found + 2
                continue
            if self._step(text[position]):
                position += 1

    def _step(self, char: str) -> bool:
        """Move on by one character; False when the character is to be read again."""
        state = self._state
        if state is _State.LESS_THAN:
            if char.isascii() and char.isalpha():
                self._open_tag(char, closing=False)
            elif char == "/":
                self._state = _State.END_SLASH
            elif char in "!?":
                self._state = _State.DECLARATION
            elif char == "<":
                self._state = _State.LESS_THAN
            else:
                self._state = _State.TEXT
        elif state is _State.END_SLASH:
            if char.isascii() and char.isalpha():
                self._open_tag(char, closing=True)
            else:
                self._state = _State.TEXT if char == ">" else _State.DECLARATION
        elif state is _State.TAG_NAME:
            if char in _SPACE or char == "/":
                self._state = _State.TAG
            elif char == ">":
                self._end_tag()
            else:
                self._name.append(char.lower())
        elif state is _State.TAG:
            if char == ">":
                self._end_tag()
            elif char == "=":
                self._state = _State.BEFORE_VALUE
        elif state is _State.BEFORE_VALUE:
            if char == '"':
                self._state = _State.DOUBLE_QUOTED
            elif char == "'":
                self._state = _State.SINGLE_QUOTED
            elif char == ">":
                self._end_tag()
            elif char not in _SPACE:
                self._state = _State.UNQUOTED
        elif state is _State.UNQUOTED:
            if char in _SPACE:
                self._state = _State.TAG
            elif char == ">":
                self._end_tag()
        elif state is _State.RAW_END:
            return self._raw_end(char)
        return True

    def _open_tag(self, first: str, *, closing: bool) -> None:
        self._state, self._name, self._closing = _State.TAG_NAME, [first.lower()], closing

    def _end_tag(self) -> None:
        name = "".join(self._name)
        if not self._closing and name in RAW_TEXT_ELEMENTS:
            self._state, self._raw_name = _State.RAW, name
        else:
            self._state = _State.TEXT

    def _raw_end(self, char: str) -> bool:
        """Inside a raw-text element only `</name` followed by a space, `/` or `>` ends it;
        anything else goes back to the element's content and is read again there."""
        typed = len(self._name)
        if typed < len(self._raw_name):
            if char.lower() != self._raw_name[typed]:
                self._state = _State.RAW
                return False
            self._name.append(char.lower())
        elif char in _SPACE or char == "/":
            self._state, self._closing = _State.TAG, True
        elif char == ">":
            self._state = _State.TEXT
        else:
            self._state = _State.RAW
            return False
        return True
