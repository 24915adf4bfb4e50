"""Text wrapping by measured width, for Japanese and Latin text: where a line may break, and where it may not."""

from __future__ import annotations

from collections.abc import Callable

# 禁則: characters that may not start a line (closing marks, small kana, the prolonged sound mark) and that may
# not end one (opening brackets).
_NO_START = frozenset(
    "、。，．・：；？！ー～〜…‥」』）］｝〕〉》】ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々,.:;!?)]}%"
)
_NO_END = frozenset("「『（［｛〔〈《【([{")


def wrap(text: str, width: float, measure: Callable[[str], float], max_lines: int, ellipsis: str = "…") -> list[str]:
    """`text` in lines at most `width` wide (by `measure`), at most `max_lines` of them; cut text ends in `ellipsis`.

    Latin words break at spaces; Japanese, which has no spaces, breaks between any two characters except where
    禁則 forbids it (a line never starts with 。、」） or small kana, never ends with 「（).
    """
    if max_lines <= 0:
        return []
    lines = wrap_all(text, width, measure, max_lines)
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1]
    while last and measure(last + ellipsis) > width:
        last = last[:-1]
    return [*lines[: max_lines - 1], last.rstrip(" 、，,・") + ellipsis]


def wrap_all(text: str, width: float, measure: Callable[[str], float], limit: int) -> list[str]:
    """Lines of `text`, stopping once there are more than `limit` (so a hostile 1 MB summary costs nothing)."""
    lines: list[str] = []
    current: list[str] = []
    for token in _tokens(text[: 400 * (limit + 1)], width, measure):
        if token.isspace():
            if current:
                current.append(token)
            continue
        if not current or measure("".join(current) + token) <= width:
            current.append(token)
            continue
        carried = _phrase_carry(current, width, measure) or _kinsoku_carry(current, token)
        if carried and measure("".join(carried) + token) > width:
            current += carried  # keeping the rule would overflow the line: break the rule instead
            carried = []
        lines.append("".join(current).strip())
        if len(lines) > limit:
            return lines
        current = [*carried, token]
    if current:
        lines.append("".join(current).strip())
    return [line for line in lines if line]


def _tokens(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """Units that are never split: a Latin word, one CJK character, or a space. A word wider than a whole line
    (a long URL) is split into pieces that fit."""
    tokens: list[str] = []
    word = ""
    for char in text:
        if char == " " or ord(char) >= 0x2E80:
            if word:
                tokens += _split_word(word, width, measure)
                word = ""
            tokens.append(char)
        else:
            word += char
    if word:
        tokens += _split_word(word, width, measure)
    return tokens


def _split_word(word: str, width: float, measure: Callable[[str], float]) -> list[str]:
    if measure(word) <= width:
        return [word]
    pieces, piece = [], ""
    for char in word:
        if piece and measure(piece + char) > width:
            pieces.append(piece)
            piece = ""
        piece += char
    return [*pieces, piece] if piece else pieces


def _phrase_carry(current: list[str], width: float, measure: Callable[[str], float]) -> list[str]:
    """Japanese headlines separate phrases with a full-width space: when one sits in the last part of a full
    line, break there rather than inside the next phrase (北 | 日本 → | 北日本)."""
    if "\u3000" not in current:
        return []
    space = len(current) - 1 - current[::-1].index("\u3000")
    if space == 0 or len(current) - space > 9 or measure("".join(current[:space])) < 0.6 * width:
        return []
    carried = current[space + 1 :]
    del current[space:]
    return carried


def _kinsoku_carry(current: list[str], token: str) -> list[str]:
    """Tokens to move from the end of the full line `current` to the next line, so that neither line breaks 禁則."""
    carried: list[str] = []
    while current and current[-1] == " ":
        current.pop()
    if token[0] in _NO_START and len(current) > 1:
        carried.insert(0, current.pop())
    while len(current) > 1 and current[-1][-1] in _NO_END:
        carried.insert(0, current.pop())
    return carried
