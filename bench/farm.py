"""A deterministic feed farm and the server that publishes it on 127.0.0.1.

`generate_farm(seed, count)` builds every source's bodies in memory (plain and
gzipped, with their ETag and Last-Modified): a mix of RSS 2.0, Atom and
RSS 1.0; 20-100 items each; a share of Chinese sources, half of them encoded
in GBK; articles that several sources carry under URL variants (http/https,
`utm_*` parameters, a fragment). The same seed always gives the same bytes.

`FarmServer` serves the farm from worker processes of its own (an asyncio
loop each, all accepting on one listening socket), honours If-None-Match and
If-Modified-Since with 304s, and counts requests per source and status in
shared memory, so the process being measured shares nothing with it. Switching
a source to its churned body is one shared-memory write (`set_version`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gzip
import hashlib
import multiprocessing
import os
import random
import signal
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from multiprocessing.sharedctypes import RawArray
from pathlib import Path
from types import TracebackType
from typing import Any
from xml.sax.saxutils import escape, quoteattr

BASE_TIME = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)  # the farm's "now"; nothing reads the clock
CATEGORIES = (
    "world", "tech", "science", "business", "finance", "sports",
    "culture", "health", "china", "asia", "opinion", "local",
)  # fmt: skip
TAGS = (
    "breaking", "analysis", "markets", "ai", "climate", "elections", "startups", "football",
    "东财滚动新闻", "国际", "科技", "财经", "体育", "健康", "文化", "深度",
)  # fmt: skip
KINDS = (("rss2", 0.5), ("atom", 0.35), ("rss1", 0.15))
CJK_SHARE = 0.3  # sources written in Chinese; half of them are served in GBK
SHARED_SHARE = 0.15  # chance that an item is an article other sources carry too
CHURN_SHARE = 0.10  # sources that gain CHURN_ITEMS items in the churn step
CHURN_ITEMS = 5
STATUSES = (200, 304, 404)  # the request counters' columns

_WORDS = (
    "market report growth policy energy city council vote season team player science study data "
    "research health care hospital school budget tax trade export import bank rate inflation court "
    "law police climate weather storm river bridge road rail airport museum festival music film "
    "book author company startup product launch software network security privacy cloud model "
    "chip battery vehicle solar wind water farm food price housing rent job worker union strike "
    "election party minister leader summit talks deal agreement report survey poll crowd fans "
    "goal match final record win loss coach league cup island coast mountain village region "
    "northern southern eastern western local national global annual weekly daily early late new "
    "old major minor rapid slow strong weak public private open closed first last next previous"
).split()
# Common Chinese characters, all of them in GBK.
_HANZI = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产"
    "种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从"
    "业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又"
    "么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位"
    "入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放"
    "决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受"
    "联什认六共权收证改清美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华"
    "名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容"
    "儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号"
)
_CJK_PUNCTUATION = "，，，。、；：“”"


@dataclass(frozen=True, slots=True)
class Version:
    """One body of a source, ready to send."""

    body: bytes
    gzipped: bytes
    etag: str
    last_modified: str
    items: int


@dataclass(frozen=True, slots=True)
class FarmSource:
    """One source of the farm and the bodies it can serve (index 1: after churn)."""

    index: int
    name: str
    path: str
    kind: str  # rss2, atom or rss1
    encoding: str  # utf-8 or gbk
    cjk: bool
    category: str
    tags: tuple[str, ...]
    content_type: str
    versions: tuple[Version, ...]


@dataclass(frozen=True, slots=True)
class Farm:
    """Every source, which ones churn, and what a perfect deduplicating store ends up with."""

    seed: int
    sources: tuple[FarmSource, ...]
    churned: tuple[int, ...]  # source indexes that gain CHURN_ITEMS items
    distinct_items: int  # distinct articles (by canonical URL) in the initial bodies
    distinct_items_after_churn: int
    stats: dict[str, int] = field(default_factory=dict)

    def entries(self, version: int = 0) -> int:
        """Entries served by all sources at `version` (a source without it serves version 0)."""
        return sum(s.versions[min(version, len(s.versions) - 1)].items for s in self.sources)

    def churned_entries(self) -> int:
        return sum(self.sources[i].versions[1].items for i in self.churned)


@dataclass(frozen=True, slots=True)
class _Article:
    host: str
    path: str
    title: str
    summary: str
    content: str
    author: str
    published: datetime
    cjk: bool


class _Text:
    """Deterministic Latin and Chinese filler text: slices of two long random texts, which is fast."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._words = rng.choices(_WORDS, k=200_000)
        chars = rng.choices(_HANZI, k=400_000)
        position = 0
        while position < len(chars):
            chars[position] = rng.choice(_CJK_PUNCTUATION)
            position += rng.randint(6, 14)
        self._hanzi = "".join(chars)

    def words(self, low: int, high: int) -> str:
        count = self.rng.randint(low, high)
        start = self.rng.randrange(len(self._words) - count)
        return " ".join(self._words[start : start + count])

    def hanzi(self, low: int, high: int) -> str:
        count = self.rng.randint(low, high)
        start = self.rng.randrange(len(self._hanzi) - count)
        return self._hanzi[start : start + count].strip(_CJK_PUNCTUATION) + "。"

    def title(self, cjk: bool) -> str:
        if cjk:
            return self.hanzi(10, 24).rstrip("。")
        return self.words(4, 10).capitalize()

    def summary(self, cjk: bool) -> str:
        return self.hanzi(40, 90) if cjk else self.words(20, 45).capitalize() + "."

    def content(self, cjk: bool, link: str) -> str:
        paragraphs = []
        for number in range(self.rng.randint(2, 4)):
            text = self.hanzi(60, 160) if cjk else self.words(30, 70).capitalize() + "."
            if number == 0:
                text = f'<strong>{text[:12]}</strong>{text[12:]} <a href="{escape(link)}">more</a>'
            paragraphs.append(f"<p>{text}</p>")
        return "".join(paragraphs)


def _article(text: _Text, host: str, path: str, published: datetime, cjk: bool) -> _Article:
    link = f"https://{host}{path}"
    author = text.hanzi(2, 3).rstrip("。") if cjk else text.words(2, 2).title()
    return _Article(
        host, path, text.title(cjk), text.summary(cjk), text.content(cjk, link), author, published, cjk
    )


def _variant(rng: random.Random, article: _Article, source_name: str) -> str:
    """The article's URL as one source writes it: same url key, different spelling."""
    scheme = rng.choice(("https", "http"))
    decoration = rng.choice(
        ("", "", f"?utm_source={source_name}&utm_medium=rss", "?utm_campaign=feed", "#comments")
    )
    return f"{scheme}://{article.host}{article.path}{decoration}"


def _rfc822(moment: datetime) -> str:
    return format_datetime(moment)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat()


def _render(
    kind: str, encoding: str, name: str, cjk: bool, entries: Sequence[tuple[_Article, str, str]]
) -> str:
    """A feed document; `entries` are (article, link as written, guid), newest first."""
    lang = "zh-cn" if cjk else "en"
    title = f"{'新闻源' if cjk else 'Source'} {name}"
    site = f"https://www.{name}.example.com/"
    head = f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n'
    updated = max((article.published for article, _, _ in entries), default=BASE_TIME)
    parts: list[str] = [head]
    if kind == "rss2":
        parts.append(
            '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>{escape(title)}</title><link>{site}</link>"
            f"<description>{escape(title)}</description><language>{lang}</language>"
            f"<lastBuildDate>{_rfc822(updated)}</lastBuildDate>\n"
        )
        for article, link, guid in entries:
            parts.append(
                f"<item><title>{escape(article.title)}</title><link>{escape(link)}</link>"
                f'<guid isPermaLink="false">{guid}</guid><pubDate>{_rfc822(article.published)}</pubDate>'
                f"<dc:creator>{escape(article.author)}</dc:creator>"
                f"<description>{escape(article.summary)}</description>"
                f"<content:encoded>{escape(article.content)}</content:encoded></item>\n"
            )
        parts.append("</channel></rss>\n")
    elif kind == "atom":
        parts.append(
            f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{lang}">'
            f"<title>{escape(title)}</title><id>urn:bench:{name}</id>"
            f"<updated>{_rfc3339(updated)}</updated>"
            f'<link rel="self" href="{site}atom.xml"/><link rel="alternate" href="{site}"/>\n'
        )
        for article, link, guid in entries:
            parts.append(
                f"<entry><title>{escape(article.title)}</title><id>tag:{name},2026:{guid}</id>"
                f'<link rel="alternate" href={quoteattr(link)}/>'
                f"<published>{_rfc3339(article.published)}</published>"
                f"<updated>{_rfc3339(article.published)}</updated>"
                f"<author><name>{escape(article.author)}</name></author>"
                f'<summary type="html">{escape(article.summary)}</summary>'
                f'<content type="html">{escape(article.content)}</content></entry>\n'
            )
        parts.append("</feed>\n")
    else:
        parts.append(
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/">'
            f"<channel rdf:about={quoteattr(site + 'index.rdf')}><title>{escape(title)}</title>"
            f"<link>{site}</link><description>{escape(title)}</description><items><rdf:Seq>"
        )
        parts.extend(f"<rdf:li rdf:resource={quoteattr(link)}/>" for _, link, _ in entries)
        parts.append("</rdf:Seq></items></channel>\n")
        for article, link, _ in entries:
            parts.append(
                f"<item rdf:about={quoteattr(link)}><title>{escape(article.title)}</title>"
                f"<link>{escape(link)}</link><description>{escape(article.summary)}</description>"
                f"<dc:date>{_rfc3339(article.published)}</dc:date>"
                f"<dc:creator>{escape(article.author)}</dc:creator>"
                f"<content:encoded>{escape(article.content)}</content:encoded></item>\n"
            )
        parts.append("</rdf:RDF>\n")
    return "".join(parts)


def _version(text: str, encoding: str, items: int, modified: datetime) -> Version:
    body = text.encode(encoding)
    return Version(
        body=body,
        gzipped=gzip.compress(body, compresslevel=1, mtime=0),
        etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
        last_modified=format_datetime(modified.astimezone(UTC), usegmt=True),
        items=items,
    )


def _pick_kind(rng: random.Random) -> str:
    draw = rng.random()
    for kind, share in KINDS:
        if draw < share:
            return kind
        draw -= share
    return KINDS[-1][0]


def generate_farm(seed: int = 20261101, count: int = 1000) -> Farm:
    """Build the farm for `seed`; the same arguments always give the same bytes."""
    rng = random.Random(seed)
    text = _Text(rng)
    china, utc = timezone(timedelta(hours=8)), timezone(timedelta(hours=0))
    newsroom = timezone(timedelta(hours=-5))
    shared: dict[bool, list[_Article]] = {False: [], True: []}
    for number in range(max(40, count * 2)):
        cjk = number % 2 == 1
        published = BASE_TIME - timedelta(minutes=rng.randint(1, 60 * 24 * 30))
        zone = china if cjk else rng.choice((utc, newsroom))
        host = f"wire{number % 37}.example.{'cn' if cjk else 'com'}"
        path = f"/{published:%Y/%m/%d}/story-{number}.html"
        shared[cjk].append(_article(text, host, path, published.astimezone(zone), cjk))
    sources: list[FarmSource] = []
    canonical: set[str] = set()
    entries_by_source: list[list[tuple[_Article, str, str]]] = []
    for index in range(count):
        name = f"s{index:04d}"
        kind = _pick_kind(rng)
        cjk = rng.random() < CJK_SHARE
        encoding = "gbk" if cjk and rng.random() < 0.5 else "utf-8"
        zone = china if cjk else rng.choice((utc, newsroom))
        host = f"www.{name}.example.{'cn' if cjk else 'com'}"
        used: set[int] = set()
        entries: list[tuple[_Article, str, str]] = []
        for number in range(rng.randint(20, 100)):
            guid = f"{name}-{number}"
            if rng.random() < SHARED_SHARE:
                pick = rng.randrange(len(shared[cjk]))
                if pick not in used:
                    used.add(pick)
                    article = shared[cjk][pick]
                    entries.append((article, _variant(rng, article, name), guid))
                    canonical.add(article.host + article.path)
                    continue
            published = (BASE_TIME - timedelta(minutes=rng.randint(1, 60 * 24 * 30))).astimezone(zone)
            article = _article(text, host, f"/{published:%Y/%m}/{number}.html", published, cjk)
            link = f"https://{host}{article.path}" if rng.random() < 0.8 else f"http://{host}{article.path}"
            entries.append((article, link, guid))
            canonical.add(article.host + article.path)
        entries.sort(key=lambda entry: entry[0].published, reverse=True)
        entries_by_source.append(entries)
        mime = {"rss2": "application/rss+xml", "atom": "application/atom+xml", "rss1": "application/rdf+xml"}
        content_type = mime[kind]
        if encoding == "utf-8" or rng.random() < 0.5:
            content_type += f"; charset={encoding}"  # else the XML declaration alone names it
        tags = tuple(rng.sample(TAGS, rng.choice((0, 1, 1, 2))))
        sources.append(
            FarmSource(
                index=index,
                name=name,
                path=f"/s/{name}.xml",
                kind=kind,
                encoding=encoding,
                cjk=cjk,
                category=rng.choice(CATEGORIES),
                tags=tags,
                content_type=content_type,
                versions=(
                    _version(_render(kind, encoding, name, cjk, entries), encoding, len(entries), BASE_TIME),
                ),
            )
        )
    distinct = len(canonical)
    churned = tuple(sorted(rng.sample(range(count), max(1, round(count * CHURN_SHARE)))))
    for index in churned:
        source = sources[index]
        zone = china if source.cjk else utc
        host = f"www.{source.name}.example.{'cn' if source.cjk else 'com'}"
        fresh = []
        for number in range(CHURN_ITEMS):
            published = (BASE_TIME + timedelta(minutes=10 * (number + 1))).astimezone(zone)
            article = _article(text, host, f"/churn/{number}.html", published, source.cjk)
            fresh.append((article, f"https://{host}{article.path}", f"{source.name}-churn-{number}"))
            canonical.add(article.host + article.path)
        entries = sorted(fresh, key=lambda e: e[0].published, reverse=True) + entries_by_source[index]
        body = _render(source.kind, source.encoding, source.name, source.cjk, entries)
        churn = _version(body, source.encoding, len(entries), BASE_TIME + timedelta(hours=1))
        sources[index] = FarmSource(**{**_fields(source), "versions": (*source.versions, churn)})
    stats = {
        "sources": count,
        **{f"kind_{kind}": sum(s.kind == kind for s in sources) for kind, _ in KINDS},
        "cjk_sources": sum(s.cjk for s in sources),
        "gbk_sources": sum(s.encoding == "gbk" for s in sources),
        "entries": sum(s.versions[0].items for s in sources),
        "bytes": sum(len(s.versions[0].body) for s in sources),
        "gzipped_bytes": sum(len(s.versions[0].gzipped) for s in sources),
    }
    return Farm(seed, tuple(sources), churned, distinct, len(canonical), stats)


def _fields(source: FarmSource) -> dict[str, Any]:
    return {name: getattr(source, name) for name in FarmSource.__slots__}


# -- the server --------------------------------------------------------------------------------


class _Shared:
    """Shared memory between the bench and the server workers: versions and request counts."""

    def __init__(self, sources: int, workers: int) -> None:
        self.sources = sources
        self.workers = workers
        self.versions = RawArray(ctypes.c_int, sources)
        # One row per worker, so that no two processes ever increment the same counter.
        self.counts = RawArray(ctypes.c_ulong, workers * sources * len(STATUSES))

    def add(self, worker: int, source: int, status: int) -> None:
        self.counts[(worker * self.sources + source) * len(STATUSES) + STATUSES.index(status)] += 1

    def snapshot(self) -> list[list[int]]:
        """[source][status column] summed over workers."""
        width = len(STATUSES)
        totals = [[0] * width for _ in range(self.sources)]
        for worker in range(self.workers):
            base = worker * self.sources * width
            for source in range(self.sources):
                row = totals[source]
                for column in range(width):
                    row[column] += self.counts[base + source * width + column]
        return totals


class _Connection(asyncio.Protocol):
    """A minimal HTTP/1.1 server connection: GET/HEAD, keep-alive, conditional requests."""

    def __init__(self, farm: Farm, routes: dict[str, int], shared: _Shared, worker: int) -> None:
        self.farm = farm
        self.routes = routes
        self.shared = shared
        self.worker = worker
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            if not self._respond(head.decode("latin-1")):
                self.transport.close()
                return
        if len(self.buffer) > 65536:
            self.transport.close()

    def _respond(self, head: str) -> bool:
        """Write one response; False when the connection is to be closed."""
        assert self.transport is not None
        request_line, *lines = head.split("\r\n")
        try:
            method, target, protocol = request_line.split(" ", 2)
        except ValueError:
            return False
        headers = {}
        for line in lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep = connection != "close" if protocol == "HTTP/1.1" else connection == "keep-alive"
        index = self.routes.get(target.split("?", 1)[0])
        if index is None:
            self._send(404, [("Content-Type", "text/plain")], b"not found\n", method, keep)
            return keep
        source = self.farm.sources[index]
        version = source.versions[min(self.shared.versions[index], len(source.versions) - 1)]
        validators = [("ETag", version.etag), ("Last-Modified", version.last_modified)]
        if _not_modified(headers, version):
            self.shared.add(self.worker, index, 304)
            self._send(304, validators, b"", method, keep)
            return keep
        self.shared.add(self.worker, index, 200)
        extra = [("Content-Type", source.content_type), *validators, ("Vary", "Accept-Encoding")]
        body = version.body
        if "gzip" in headers.get("accept-encoding", ""):
            body = version.gzipped
            extra.append(("Content-Encoding", "gzip"))
        self._send(200, extra, body, method, keep)
        return keep

    def _send(
        self, status: int, headers: list[tuple[str, str]], body: bytes, method: str, keep: bool
    ) -> None:
        assert self.transport is not None
        reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
        if status != 304:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: keep-alive" if keep else "Connection: close")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.transport.write(payload + body if method != "HEAD" and status != 304 else payload)


def _not_modified(headers: dict[str, str], version: Version) -> bool:
    if "if-none-match" in headers:
        tags = [tag.strip() for tag in headers["if-none-match"].split(",")]
        return "*" in tags or version.etag in tags or f"W/{version.etag}" in tags
    if "if-modified-since" in headers:
        try:
            since = parsedate_to_datetime(headers["if-modified-since"])
            return since >= parsedate_to_datetime(version.last_modified)
        except (TypeError, ValueError):
            return False
    return False


def _die_with_parent() -> None:
    """Best effort: the kernel sends SIGTERM to this worker when the bench dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _serve(
    farm: Farm, listener: socket.socket, shared: _Shared, worker: int, parent: int, ready: Any
) -> None:
    """A server worker's main: one asyncio loop accepting on the shared socket until told to stop."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench stops us; Ctrl-C is its business
    routes = {source.path: source.index for source in farm.sources}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(
            lambda: _Connection(farm, routes, shared, worker), sock=listener, backlog=1024
        )
        ready.set()
        while not stop.is_set() and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        server.close()

    asyncio.run(main())


class FarmServer:
    """Serves a farm on 127.0.0.1 from `workers` processes; a context manager."""

    def __init__(self, farm: Farm, workers: int = 2) -> None:
        self.farm = farm
        self.workers = workers
        self.shared = _Shared(len(farm.sources), workers)
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1024)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()

    def url(self, source: FarmSource) -> str:
        return f"http://127.0.0.1:{self.port}{source.path}"

    def start(self) -> FarmServer:
        context = multiprocessing.get_context("fork")  # the farm's bodies are shared, not pickled
        for worker in range(self.workers):
            ready = context.Event()
            process = context.Process(
                target=_serve,
                args=(self.farm, self._listener, self.shared, worker, os.getpid(), ready),
                name=f"farm-server-{worker}",
                daemon=True,
            )
            process.start()
            self._processes.append(process)
            if not ready.wait(30):
                self.stop()
                raise RuntimeError("farm server worker did not start")
        return self

    def stop(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
        self._processes.clear()
        self._listener.close()

    def cpu_seconds(self) -> float | None:
        """CPU time the server workers used so far (from /proc; None where there is none)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        try:
            for process in self._processes:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        except (OSError, ValueError, IndexError):
            return None
        return total

    def set_version(self, indexes: Sequence[int], version: int) -> None:
        for index in indexes:
            self.shared.versions[index] = version

    def counts(self) -> list[list[int]]:
        """Requests so far: [source index][column of STATUSES]."""
        return self.shared.snapshot()

    def __enter__(self) -> FarmServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
