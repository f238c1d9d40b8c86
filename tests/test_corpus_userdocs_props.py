"""Property tests: Markdown and HTML parsers never crash and always give well-formed sections."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.corpus import chunk_document, parse_html, parse_markdown
from workbench.types import Document

_md_lines = st.sampled_from(
    [
        "# Title",
        "## Sub *heading*",
        "###",
        "Plain text line. Another sentence.",
        "",
        "   ",
        "---",
        "===",
        "```",
        "~~~~",
        "- list item",
        "#not a heading",
        "    # indented code",
        "| a | b |",
        "Caf\u00e9 \u00fcber na\u00efve.",
        "---\ntitle: x\n---",
    ]
)

_html_bits = st.sampled_from(
    [
        "<h1>",
        "</h1>",
        "<h2>",
        "</h2>",
        "<h3>x</h3>",
        "<p>",
        "</p>",
        "<div>",
        "</div>",
        "<br>",
        "<script>",
        "</script>",
        "<style>a{}</style>",
        "<pre>  a\n  b </pre>",
        "Some text.",
        "More text &amp; entities &lt;x&gt;.",
        "<li>item</li>",
        "<title>T</title>",
        "</span>",
        "<!-- comment -->",
        "<nav>menu</nav>",
        "\u00e9l\u00e8ve",
    ]
)


def _check(doc: Document) -> None:
    prev_end = 0
    for s in doc.sections:
        assert prev_end <= s.start < s.end <= len(doc.text)
        body = doc.text[s.start : s.end]
        assert body.strip() and body == body.rstrip()
        prev_end = s.end
    for c in chunk_document(doc, max_tokens=8, overlap=2):
        assert doc.text[c.start : c.end] == c.text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_md_lines, max_size=30))
def test_markdown_sections_are_well_formed(lines: list[str]) -> None:
    data = "\n".join(lines).encode("utf-8")
    doc = parse_markdown(data, source_name="x.md", doc_id="u:x.md")
    _check(doc)
    assert doc.title


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_html_bits, max_size=40))
def test_html_sections_are_well_formed(bits: list[str]) -> None:
    doc = parse_html("".join(bits).encode("utf-8"), source_name="x.html", doc_id="u:x.html")
    _check(doc)
    assert "a{}" not in doc.text and "menu" not in doc.text
