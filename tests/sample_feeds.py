"""Feed documents in the formats the aggregator must read, built from small item lists.

Each builder returns bytes exactly as a publisher would serve them, so tests
exercise real parsing (encodings included) rather than pre-parsed data.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Article:
    title: str
    link: str
    date: str  # in the format the feed type uses
    summary: str = ""
    content: str = ""
    guid: str | None = None


def rss2(title: str, site: str, articles: list[Article], *, encoding: str = "utf-8") -> bytes:
    items = "".join(
        "<item>"
        f"<title>{escape(a.title)}</title><link>{escape(a.link)}</link>"
        f'<guid isPermaLink="false">{escape(a.guid or a.link)}</guid>'
        f"<pubDate>{a.date}</pubDate>"
        f"<description>{escape(a.summary)}</description>"
        + (f"<content:encoded><![CDATA[{a.content}]]></content:encoded>" if a.content else "")
        + "</item>"
        for a in articles
    )
    document = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>{escape(title)}</title><link>{escape(site)}</link>"
        f"<description>{escape(title)}</description>{items}</channel></rss>"
    )
    return document.encode("gbk" if encoding.lower() in ("gb2312", "gbk") else encoding)


def atom(title: str, site: str, articles: list[Article]) -> bytes:
    entries = "".join(
        "<entry>"
        f'<title>{escape(a.title)}</title><link rel="alternate" href="{escape(a.link)}"/>'
        f"<id>{escape(a.guid or a.link)}</id><updated>{a.date}</updated><published>{a.date}</published>"
        f"<author><name>Reporter</name></author>"
        f"<summary>{escape(a.summary)}</summary>"
        + (f'<content type="html">{escape(a.content)}</content>' if a.content else "")
        + "</entry>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f'<title>{escape(title)}</title><id>{escape(site)}</id><link href="{escape(site)}"/>'
        f"<updated>2022-03-14T12:00:00+08:00</updated>{entries}</feed>"
    ).encode()


def rss1(title: str, site: str, articles: list[Article]) -> bytes:
    seq = "".join(f'<rdf:li rdf:resource="{escape(a.link)}"/>' for a in articles)
    items = "".join(
        f'<item rdf:about="{escape(a.link)}"><title>{escape(a.title)}</title><link>{escape(a.link)}</link>'
        f"<description>{escape(a.summary)}</description><dc:date>{a.date}</dc:date></item>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<channel rdf:about="{escape(site)}"><title>{escape(title)}</title><link>{escape(site)}</link>'
        f"<description>{escape(title)}</description><items><rdf:Seq>{seq}</rdf:Seq></items></channel>"
        f"{items}</rdf:RDF>"
    ).encode()
