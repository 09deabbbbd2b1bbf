"""Cleaning and sentence segmentation for English and Chinese text (rules, no model)."""
from __future__ import annotations

import re
import unicodedata

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_OVERSTRIKE = re.compile(r".\x08")  # bold/underline in old terminal text: "_\bX", "X\bX"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_LINES = re.compile(r"\n[ \t\u3000]*\n\s*")

_CLOSERS = "\"'”’)\\]}」』》〉）"
_OPENERS = "\"'“‘(\\[{「『《〈（`"
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_BOUNDARY = re.compile(
    rf"[。！？]+[{_CLOSERS}]*"  # Chinese full stop, !, ?: always the end of a sentence
    rf"|[!?]+[{_CLOSERS}]*(?=[{_CJK}])"  # ASCII !/? inside Chinese text
    rf"|[.!?…]+[{_CLOSERS}]*(?=\s+(?:[{_OPENERS}]+\s*)?[A-Z0-9À-ÖØ-Þ{_CJK}])"  # Latin: space, then a capital
)
#: words that a full stop follows without ending the sentence (lower case, without the stop)
ABBREVIATIONS = frozenset(
    "mr mrs ms messrs dr prof sr jr st mt ft vs no nos fig figs gen gov sen rep col lt capt sgt maj cmdr adm rev "
    "hon pres inc ltd co corp bros jan feb mar apr jun jul aug sep sept oct nov dec approx dept est al cf viz ca "
    "vol vols pp ed eds op".split()
)


def clean_text(text: str) -> str:
    """NFC-normalised text without ANSI colour codes, overstrikes, carriage returns or control characters."""
    text = _ANSI.sub("", text)
    if "\b" in text:
        text = _OVERSTRIKE.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", _CONTROL.sub("", text))


def _is_wide(ch: str) -> bool:
    """CJK characters and full-width punctuation: no space is written between them."""
    return "\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\uff00" <= ch <= "\uffef"


def unwrap(paragraph: str) -> str:
    """Hard-wrapped lines joined into one: by a space, or by nothing between two CJK characters."""
    out = ""
    for line in paragraph.split("\n"):
        line = " ".join(line.split())
        if not line:
            continue
        if out and not (_is_wide(out[-1]) and _is_wide(line[0])):
            out += " "
        out += line
    return out


def _abbreviation_before(text: str, i: int) -> bool:
    """Whether the full stop at ``text[i]`` follows an abbreviation or a single-letter initial."""
    j = i
    while j > 0 and text[j - 1].isalpha() and i - j < 12:
        j -= 1
    word = text[j:i]
    return (len(word) == 1 and word.isalpha()) or word.lower() in ABBREVIATIONS


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one unwrapped paragraph.

    English: a sentence ends at ``.``, ``!``, ``?`` or ``…`` (with any closing quotes or brackets) that
    is followed by white space and a capital letter, digit or opening quote — unless the stop follows
    an abbreviation (Mr., e.g., U.S.) or an initial. Chinese: it ends after 。！？ (and closing quotes
    such as ”」), with or without a following space.
    """
    cuts = []
    for m in _BOUNDARY.finditer(paragraph):
        first = paragraph[m.start()]
        if first == "." and m.group().count(".") == 1 and _abbreviation_before(paragraph, m.start()):
            continue
        cuts.append(m.end())
    out, start = [], 0
    for c in cuts + [len(paragraph)]:
        s = paragraph[start:c].strip()
        if s:
            out.append(s)
        start = c
    return out


def segment_document(text: str) -> list[str]:
    """A document's sentences: cleaned, paragraphs (blank lines) unwrapped, then split into sentences."""
    sentences = []
    for para in _BLANK_LINES.split(clean_text(text)):
        sentences += split_sentences(unwrap(para))
    return sentences
