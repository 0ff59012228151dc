"""Bytes -> text: which character encoding a fetched document is really in.

Pure. Publishers and their servers often disagree: a UTF-8 BOM under a server
default of `charset=ISO-8859-1`, an XML declaration saying GB2312 over bytes
holding GBK characters, a `text/xml` with no charset at all (RFC 3023 would
say US-ASCII). Decoding strictly and trying the declarations in order of how
much they can be trusted avoids mojibake:

1. the source's own `encoding:` override, when configured;
2. a byte order mark (it cannot be there by accident);
3. the HTTP `charset`, when the bytes decode cleanly with it. A single-byte
   Latin charset (ISO-8859-1, windows-1252, US-ASCII) is what servers send
   by default, and almost any bytes decode with it; so when the document
   itself declares something else that also decodes cleanly, the document wins;
4. the document's declaration (`<?xml encoding=...?>`, else, in HTML only,
   `<meta charset>` within the first 4 KiB: HTML asks for 1 KiB, publishers
   are lax). A feed or JSON API often quotes a whole page, meta tag and all,
   in its content: that declares nothing about the feed, which is UTF-8
   unless it says otherwise (XML 1.0 section 4.3.3, RFC 8259);
5. UTF-8, then a statistical guess (charset_normalizer) for undeclared bytes.

When nothing decodes cleanly (a stray corrupt byte), the most trusted
declaration decodes with U+FFFD replacements: one lost character beats a
whole page of mojibake.

Declared names are widened to the supersets browsers use (WHATWG Encoding
Standard): GB2312 and GBK -> GB18030, Big5 -> Big5-HKSCS, Shift_JIS ->
cp932, EUC-KR -> cp949, ISO-8859-1 and US-ASCII -> windows-1252; labels
Python does not know but pages use ("x-gbk", "windows-31j") are understood.

One decoder for every page the aggregator reads: feeds (parse.py), html and
json listings (scrape.py) and article pages (extract.py), so a source's
`encoding:` and these rules mean the same everywhere.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Decoded", "decode_document", "is_known_encoding", "to_utf8"]

# Declared name (after codecs.lookup) -> the superset to decode with.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "big5hkscs",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
}
# Labels from the WHATWG Encoding Standard that codecs.lookup does not know.
_LABELS = {
    "x-gbk": "gbk",
    "csgb2312": "gb2312",
    "gb_2312-80": "gb2312",
    "iso-ir-58": "gb2312",
    "chinese": "gb2312",
    "x-sjis": "shift_jis",
    "windows-31j": "shift_jis",
    "ms_kanji": "shift_jis",
    "csshiftjis": "shift_jis",
    "cn-big5": "big5",
    "x-x-big5": "big5",
    "x-euc-jp": "euc_jp",
}
# Charsets servers send by default; bytes in nearly any encoding "decode" with them.
_WEAK_HTTP = frozenset({"cp1252", "iso8859-1", "ascii"})
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
# UTF-16/32 without a BOM: where the NUL bytes fall around the first ASCII characters, "<?" of
# XML (XML 1.0, appendix F) or "{" of JSON (RFC 4627, section 3). 0: NUL, A: ASCII but NUL.
_BOMLESS = {"000A": "utf-32-be", "A000": "utf-32-le", "0A0A": "utf-16-be", "A0A0": "utf-16-le"}
_CHARSET_PARAMETER = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_XML_DECLARATION = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["'][^>]*\?>""")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_XML_DECLARATION_TEXT = re.compile(r"^\s*<\?xml[^>]*\?>")
_UTF8_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>"
_SNIFF_BYTES = 4096  # where a declaration is looked for (HTML: 1024 bytes, but publishers are lax)


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    encoding: str  # the Python codec used
    reason: str  # which rule chose it: override, bom, http, declared, utf-8, guessed, replaced


def is_known_encoding(name: str) -> bool:
    """Whether Python has a codec for `name` (config validation)."""
    return _codec(name) is not None


def _codec(name: str | None) -> str | None:
    """The codec to decode a declared name with, widened to its superset; None if unknown."""
    if not name:
        return None
    label = name.strip().lower()
    try:
        canonical = codecs.lookup(_LABELS.get(label, label)).name
    except LookupError:
        return None
    return _SUPERSETS.get(canonical, canonical)


def _http_charset(headers: Mapping[str, str]) -> str | None:
    content_type = next((value for key, value in headers.items() if key.lower() == "content-type"), "")
    match = _CHARSET_PARAMETER.search(content_type)
    return match.group(1) if match else None


def _bom(body: bytes) -> tuple[str | None, bytes]:
    """The encoding a BOM names and the body without it."""
    for mark, name in _BOMS:
        if body.startswith(mark):
            return name, body[len(mark) :]
    pattern = "".join("0" if byte == 0 else "A" if byte < 0x80 else "-" for byte in body[:4])
    return _BOMLESS.get(pattern), body


def _declared(body: bytes, *, html: bool) -> str | None:
    """The document's own declaration: <?xml encoding?>, else, for `html`, a <meta charset>."""
    head = body[:_SNIFF_BYTES]
    match = _XML_DECLARATION.match(head) or (_META_CHARSET.search(head) if html else None)
    if not match:
        return None
    name = match.group(1).decode("ascii")
    # A declaration readable as ASCII proves an ASCII-compatible encoding: "utf-16" there is a lie.
    return None if name.lower().replace("_", "-").startswith(("utf-16", "utf-32", "ucs-")) else name


def _strict(body: bytes, codec: str | None) -> str | None:
    if codec is None:
        return None
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def decode_document(
    body: bytes, headers: Mapping[str, str], override: str | None = None, *, html: bool = False
) -> Decoded:
    """The text of a fetched document, by the precedence in the module docstring.

    `html` for HTML pages, the only documents a <meta charset> can declare the encoding of.
    """
    if (codec := _codec(override)) is not None:
        return Decoded(body.decode(codec, errors="replace"), codec, "override")
    bom, rest = _bom(body)
    if (text := _strict(rest, bom)) is not None:
        return Decoded(text, str(bom), "bom")
    http, declared = _codec(_http_charset(headers)), _codec(_declared(body, html=html))
    http_text = _strict(body, http)
    if http_text is not None and not (http in _WEAK_HTTP and declared not in (None, http)):
        return Decoded(http_text, str(http), "http")
    if (text := _strict(body, declared)) is not None:
        return Decoded(text, str(declared), "declared")
    if http_text is not None:
        return Decoded(http_text, str(http), "http")
    if (text := _strict(body, "utf-8")) is not None:
        return Decoded(text, "utf-8", "utf-8")
    if trusted := http or declared:
        return Decoded(body.decode(trusted, errors="replace"), trusted, "replaced")
    from charset_normalizer import from_bytes  # only for undeclared bytes: most polls never need it

    guess = from_bytes(body).best()
    if guess is not None and (text := _strict(body, _codec(guess.encoding))) is not None:
        return Decoded(text, str(_codec(guess.encoding)), "guessed")
    return Decoded(body.decode("utf-8", errors="replace"), "utf-8", "replaced")


def to_utf8(body: bytes, headers: Mapping[str, str], override: str | None = None) -> bytes:
    """An XML document re-encoded as UTF-8, its declaration saying so (what the feed readers get)."""
    text = decode_document(body, headers, override).text.removeprefix("\ufeff")
    if _XML_DECLARATION_TEXT.match(text):
        text = _XML_DECLARATION_TEXT.sub(_UTF8_DECLARATION, text, count=1)
    else:
        text = _UTF8_DECLARATION + "\n" + text
    return text.encode("utf-8")
