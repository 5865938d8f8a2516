"""The built docs site works without internet: no page loads a script, a stylesheet, an image or a
frame from another host, and no script of the site fetches from a CDN, except where the fetch
cannot happen.

Two CDN URLs sit in mkdocs-material's JS bundle, each behind a check that the site answers:

- ``https://unpkg.com/mermaid@11/...``: fetched only when the page has no global ``mermaid``
  (``typeof mermaid == "undefined"``), so every page with a diagram must load a local mermaid
  script (``extra_javascript`` in mkdocs.yml: the pinned copy in docs/assets/javascripts/);
- ``https://unpkg.com/resize-observer-polyfill``: fetched only by a browser without
  ``ResizeObserver`` (none since 2020).

Each is accepted only while that check still stands right before it in the bundle, so a theme
update that changes either makes this fail rather than the site go quietly online.

``make docs`` runs it after the build: ``python .ci/check_docs_offline.py build/site``; it exits
1 with one line per problem, naming the file and the URL.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Hosts that serve scripts, styles or fonts to web pages.
CDN_URL = re.compile(
    r"""(?:https?:)?//(?:unpkg\.com|cdn\.jsdelivr\.net|cdnjs\.cloudflare\.com|fonts\.googleapis\.com"""
    r"""|fonts\.gstatic\.com|ajax\.googleapis\.com|code\.jquery\.com|(?:cdn\.)?polyfill\.io|esm\.sh"""
    r"""|cdn\.skypack\.dev|use\.fontawesome\.com|kit\.fontawesome\.com|stackpath\.bootstrapcdn\.com)"""
    r"""[^\s"'`<>)\\]*"""
)
MERMAID_CDN = re.compile(r"(?:https?:)?//[^/]+/mermaid@")
# A CDN URL in a script that is fetched only when the text right before it (within GUARD_SPAN
# characters) tests that the browser or page lacks what it provides.
GUARD_SPAN = 300
MERMAID_GUARD = "typeof mermaid"
NEVER_FETCHED = {"//unpkg.com/resize-observer-polyfill": "typeof ResizeObserver"}

# Elements and attributes through which a page loads something.
LOADS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "video": "src", "audio": "src"}
LINK_LOADS = {"stylesheet", "preload", "modulepreload", "icon", "manifest"}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.loads: list[tuple[str, str]] = []  # (element, URL)
        self.scripts: list[str] = []
        self.inline: list[str] = []
        self.uses_mermaid = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "mermaid" in a.get("class", "").split():
            self.uses_mermaid = True
        if tag == "link" and LINK_LOADS & set(a.get("rel", "").lower().split()) and a.get("href"):
            self.loads.append((f'link rel="{a["rel"]}"', a["href"]))
        elif tag in LOADS and a.get(LOADS[tag]):
            self.loads.append((tag, a[LOADS[tag]]))
            if tag == "script":
                self.scripts.append(a["src"])
        self._in_script = tag == "script" and not a.get("src")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline.append(data)


def _is_external(url: str) -> bool:
    parts = urlsplit(url.strip())
    return parts.scheme in ("http", "https") or (not parts.scheme and url.strip().startswith("//"))


def _local_file(site: Path, page: Path, url: str) -> Path | None:
    """The file under ``site`` that a relative or site-absolute ``url`` on ``page`` names, if it exists."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = unquote(parts.path)
    target = (site / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
    target = target.resolve()
    return target if target.is_file() and target.is_relative_to(site.resolve()) else None


def _cdn_fetches(text: str) -> list[tuple[str, str]]:
    """(URL, the text just before it) for each CDN URL in a script's text."""
    return [(m.group(0), text[max(0, m.start() - GUARD_SPAN) : m.start()]) for m in CDN_URL.finditer(text)]


def check_site(site: Path) -> list[str]:
    """One line per problem (naming the file and the URL) that would make the built site at ``site``
    reach the internet when viewed; empty when it works offline."""
    site = Path(site)
    if not site.is_dir():
        return [f"{site}: no built site here"]
    problems: list[str] = []
    no_local_mermaid: list[str] = []  # pages with a diagram and no local mermaid script
    scripts: list[tuple[str, str]] = []  # (name, text) of every script, inline ones included
    for page in sorted(site.rglob("*.html")):
        name = page.relative_to(site).as_posix()
        parser = _Page()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for element, url in parser.loads:
            if _is_external(url):
                problems.append(f"{name}: <{element}> loads {url}")
        if parser.uses_mermaid and not any(
            (f := _local_file(site, page, src)) is not None and "mermaid" in f.name for src in parser.scripts
        ):
            no_local_mermaid.append(name)
        scripts += [(f"{name} (inline script)", text) for text in parser.inline]
    scripts += [
        (js.relative_to(site).as_posix(), js.read_text(encoding="utf-8", errors="replace"))
        for js in sorted(site.rglob("*.js"))
    ]
    for name, text in scripts:
        for url, before in _cdn_fetches(text):
            plain = url.split(":", 1)[1] if url.startswith("http") else url
            if MERMAID_CDN.match(url) and MERMAID_GUARD in before:
                problems += [
                    f"{page}: has a mermaid diagram but loads no local mermaid script, so {name} fetches {url}"
                    for page in no_local_mermaid
                ]
            elif not any(plain.startswith(p) and guard in before for p, guard in NEVER_FETCHED.items()):
                problems.append(f"{name}: fetches {url}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    site = Path(args[0] if args else "build/site")
    problems = check_site(site)
    for line in problems:
        print(f"offline check: {line}", file=sys.stderr)
    if problems:
        print(
            f"offline check: {len(problems)} problem(s): the site at {site} would reach the internet", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
