"""The offline check of the built docs site (.ci/check_docs_offline.py, run by ``make docs``) on
small fake sites: it names each page or script and the URL that would reach the internet, and
passes a site that loads everything from itself."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_docs_offline", ROOT / ".ci" / "check_docs_offline.py")
check = importlib.util.module_from_spec(_spec)
sys.modules["check_docs_offline"] = check
_spec.loader.exec_module(check)

# What mkdocs-material's bundle holds: both CDN URLs behind the checks that make them fallbacks.
BUNDLE = (
    'function a(){return typeof ResizeObserver=="undefined"?_t("https://unpkg.com/resize-observer-polyfill"):$()}'
    'function as(){return typeof mermaid=="undefined"||mermaid instanceof Element?'
    '_t("https://unpkg.com/mermaid@11/dist/mermaid.min.js"):$(void 0)}'
)
DIAGRAM = '<pre class="mermaid"><code>flowchart LR\n a --> b</code></pre>'


def _page(head: str = "", body: str = "", scripts: str = "") -> str:
    return (
        f"<!doctype html><html><head>{head}</head><body>{body}"
        f'<script src="assets/bundle.js"></script>{scripts}</body></html>'
    )


def _site(tmp_path: Path, pages: dict[str, str], bundle: str = BUNDLE, mermaid: bool = True) -> Path:
    site = tmp_path / "site"
    (site / "assets").mkdir(parents=True)
    (site / "assets" / "bundle.js").write_text(bundle)
    if mermaid:
        (site / "assets" / "mermaid.min.js").write_text('globalThis["mermaid"]={};')
    for name, html in pages.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(html)
    return site


LOCAL_MERMAID = '<script src="assets/mermaid.min.js" defer></script>'


def test_a_site_served_from_itself_passes(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        {
            "index.html": _page('<link rel="stylesheet" href="assets/main.css">', DIAGRAM, LOCAL_MERMAID),
            "guide/index.html": _page(body="<p>no diagram, no mermaid script</p>"),
            "ref/index.html": _page(body=DIAGRAM, scripts='<script src="/assets/mermaid.min.js"></script>'),
        },
    )
    assert check.check_site(site) == []
    assert check.main([str(site)]) == 0


@pytest.mark.parametrize(
    ("tag", "url"),
    [
        (
            '<script src="https://cdn.jsdelivr.net/npm/x@1/x.min.js"></script>',
            "https://cdn.jsdelivr.net/npm/x@1/x.min.js",
        ),
        ('<script src="//example.org/a.js"></script>', "//example.org/a.js"),
        (
            '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">',
            "https://fonts.googleapis.com/css?family=Roboto",
        ),
        ('<img src="http://img.example.com/badge.svg">', "http://img.example.com/badge.svg"),
    ],
)
def test_a_page_loading_from_another_host_is_named(tmp_path: Path, tag: str, url: str) -> None:
    site = _site(tmp_path, {"index.html": _page(), "guide/index.html": _page(head=tag)})
    problems = check.check_site(site)
    assert len(problems) == 1
    assert problems[0].startswith("guide/index.html:") and url in problems[0]


def test_a_link_that_loads_nothing_is_not_a_problem(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        {
            "index.html": _page(
                '<link rel="canonical" href="https://example.org/"><link rel="preconnect" href="https://example.org">',
                '<a href="https://example.org/">a link</a>',
            )
        },
    )
    assert check.check_site(site) == []


def test_a_diagram_without_a_local_mermaid_names_the_page_and_the_cdn_url(tmp_path: Path) -> None:
    site = _site(tmp_path, {"index.html": _page(body=DIAGRAM), "other/index.html": _page()})
    problems = check.check_site(site)
    assert len(problems) == 1
    assert problems[0].startswith("index.html:")
    assert "assets/bundle.js" in problems[0] and "https://unpkg.com/mermaid@11/dist/mermaid.min.js" in problems[0]
    assert check.main([str(site)]) == 1


def test_a_mermaid_script_that_is_not_in_the_site_does_not_count(tmp_path: Path) -> None:
    site = _site(tmp_path, {"index.html": _page(body=DIAGRAM, scripts=LOCAL_MERMAID)}, mermaid=False)
    assert len(check.check_site(site)) == 1


def test_a_cdn_fetch_without_its_guard_is_named(tmp_path: Path) -> None:
    bundle = BUNDLE.replace('typeof mermaid=="undefined"||', "").replace("typeof ResizeObserver", "window.X")
    site = _site(tmp_path, {"index.html": _page(body=DIAGRAM, scripts=LOCAL_MERMAID)}, bundle=bundle)
    problems = check.check_site(site)
    assert problems == [
        "assets/bundle.js: fetches https://unpkg.com/resize-observer-polyfill",
        "assets/bundle.js: fetches https://unpkg.com/mermaid@11/dist/mermaid.min.js",
    ]


def test_inline_scripts_and_other_scripts_are_scanned(tmp_path: Path) -> None:
    site = _site(tmp_path, {"index.html": _page(scripts='<script>load("https://cdnjs.cloudflare.com/x.js")</script>')})
    (site / "assets" / "extra.js").write_text('import("https://esm.sh/lib@2")')
    assert check.check_site(site) == [
        "index.html (inline script): fetches https://cdnjs.cloudflare.com/x.js",
        "assets/extra.js: fetches https://esm.sh/lib@2",
    ]


def test_no_site_is_a_problem(tmp_path: Path) -> None:
    assert check.check_site(tmp_path / "missing") != []


def test_the_vendored_mermaid_is_the_one_its_licence_note_names() -> None:
    """docs/assets/javascripts/mermaid.min.js (what mkdocs.yml's extra_javascript loads) matches the
    version note beside it: checksum and size."""
    import hashlib
    import re

    js = ROOT / "docs" / "assets" / "javascripts" / "mermaid.min.js"
    note = (js.parent / "mermaid.LICENSE.txt").read_text()
    data = js.read_bytes()
    assert re.search(rf"sha256 {hashlib.sha256(data).hexdigest()}\b", note)
    assert f"{len(data):,} bytes" in note
    assert "assets/javascripts/mermaid.min.js" in (ROOT / "mkdocs.yml").read_text()
