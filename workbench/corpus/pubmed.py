"""PubMed/MEDLINE citation XML reader (baseline and update files, ``.xml`` or ``.xml.gz``).

Parses ``PubmedArticleSet/PubmedArticle`` incrementally with ``defusedxml`` ``iterparse``
(entity declarations and external references are refused) and clears each article once it is
turned into a Document, so memory stays at one article however large the file.

Each article's text is its abstract: one section per ``AbstractText`` (named by its ``Label``,
else its ``NlmCategory``, else "Abstract"), separated by blank lines. An article without an
abstract gets its title as text (section "Title") so it can still be found and cited.
``DeleteCitation`` PMIDs (update files) are not documents; pass ``deleted=[]`` to collect them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from workbench.corpus._io import GZIP_ERRORS, ErrorSink, open_binary, reader_error, report, squash, tidy
from workbench.errors import ReaderError
from workbench.types import Document, Section, SourceKind

_YEAR = re.compile(r"\b(1[89]\d\d|2\d\d\d)\b")


def _text(elem: ET.Element | None) -> str:
    """All text inside an element (titles carry inline <i>, <sup>, ... markup)."""
    return squash("".join(elem.itertext())) if elem is not None else ""


def _year(article: ET.Element, pubmed_data: ET.Element | None) -> int | None:
    """Publication year: PubDate/Year, else the first year in MedlineDate, else ArticleDate, else history."""
    pub_date = article.find("Journal/JournalIssue/PubDate")
    candidates: list[str] = []
    if pub_date is not None:
        candidates += [pub_date.findtext("Year") or "", pub_date.findtext("MedlineDate") or ""]
    candidates.append(article.findtext("ArticleDate/Year") or "")
    if pubmed_data is not None:
        for d in pubmed_data.iterfind("History/PubMedPubDate"):
            if d.get("PubStatus") in ("pubmed", "entrez", "medline"):
                candidates.append(d.findtext("Year") or "")
    for c in candidates:
        m = _YEAR.search(c)
        if m:
            return int(m.group(1))
    return None


def _doi(article: ET.Element, pubmed_data: ET.Element | None) -> str:
    if pubmed_data is not None:
        for aid in pubmed_data.iterfind("ArticleIdList/ArticleId"):
            if aid.get("IdType") == "doi" and (aid.text or "").strip():
                return (aid.text or "").strip()
    for loc in article.iterfind("ELocationID"):
        if loc.get("EIdType") == "doi" and loc.get("ValidYN", "Y") == "Y" and (loc.text or "").strip():
            return (loc.text or "").strip()
    return ""


def article_document(
    elem: ET.Element, *, source_name: str, corpus: str = "pubmed", source_kind: SourceKind = "abstract"
) -> Document:
    """Turn one ``PubmedArticle`` element into a Document; a missing PMID is a ReaderError."""
    citation = elem.find("MedlineCitation")
    pmid = (citation.findtext("PMID") or "").strip() if citation is not None else ""
    if citation is None or not pmid:
        raise reader_error(
            source_name, "PubmedArticle without a PMID", "the record was skipped or must be fixed"
        )
    article = citation.find("Article")
    if article is None:
        raise reader_error(source_name, f"PMID {pmid}", "no <Article> element")
    pubmed_data = elem.find("PubmedData")

    title = _text(article.find("ArticleTitle")) or _text(article.find("VernacularTitle"))
    parts: list[str] = []
    sections: list[Section] = []
    pos = 0
    for ab in article.iterfind("Abstract/AbstractText"):
        body = tidy("".join(ab.itertext()))
        if not body:
            continue
        name = squash(ab.get("Label") or ab.get("NlmCategory") or "Abstract")
        if parts:
            pos += 2
        sections.append(Section(name, pos, pos + len(body)))
        parts.append(body)
        pos += len(body)
    text = "\n\n".join(parts)
    if not text and title:
        text = title
        sections = [Section("Title", 0, len(title))]

    metadata: dict[str, Any] = {
        "pmid": pmid,
        "doi": _doi(article, pubmed_data),
        "journal": _text(article.find("Journal/Title")) or _text(article.find("Journal/ISOAbbreviation")),
        "year": _year(article, pubmed_data),
        "publication_types": [_text(p) for p in article.iterfind("PublicationTypeList/PublicationType")],
        "mesh": [_text(d) for d in citation.iterfind("MeshHeadingList/MeshHeading/DescriptorName")],
        "language": [_text(x) for x in article.iterfind("Language")],
        "source_file": Path(source_name).name,
    }
    if pubmed_data is not None:
        for aid in pubmed_data.iterfind("ArticleIdList/ArticleId"):
            if aid.get("IdType") == "pmc" and aid.text:
                metadata["pmcid"] = aid.text.strip()
    return Document(
        doc_id=pmid,
        title=title,
        text=text,
        corpus=corpus,
        source_kind=source_kind,
        sections=sections,
        metadata=metadata,
    )


def iter_pubmed_stream(
    fh: IO[bytes],
    source_name: str,
    *,
    corpus: str = "pubmed",
    source_kind: SourceKind = "abstract",
    errors: ErrorSink = None,
    deleted: list[str] | None = None,
) -> Iterator[Document]:
    """Stream Documents from an open (decompressed) PubMed XML byte stream."""
    last = "before the first article"
    root: ET.Element | None = None
    events = DET.iterparse(fh, events=("start", "end"), forbid_dtd=False)
    try:
        for event, elem in events:
            if event == "start":
                if root is None:
                    root = elem
                    if elem.tag != "PubmedArticleSet":
                        raise reader_error(
                            source_name,
                            None,
                            f"not a PubMed file (root element <{elem.tag}>, expected <PubmedArticleSet>)",
                        )
                continue
            tag = elem.tag
            if tag == "PubmedArticle":
                try:
                    doc = article_document(
                        elem, source_name=source_name, corpus=corpus, source_kind=source_kind
                    )
                except ReaderError as exc:
                    report(exc, errors)
                else:
                    last = f"after PMID {doc.doc_id}"
                    yield doc
            elif tag == "DeleteCitation":
                if deleted is not None:
                    deleted.extend((p.text or "").strip() for p in elem.iterfind("PMID"))
            elif tag != "PubmedBookArticle":
                continue  # inside an article: keep until the article ends
            # Drop finished records so memory holds one article at a time.
            if root is not None:
                root.clear()
    except ET.ParseError as exc:
        line, col = exc.position
        raise reader_error(
            source_name,
            f"{last}, line {line} column {col}",
            f"malformed or truncated XML ({exc})",
            "Re-download the file; the articles before this point were read.",
        ) from exc
    except DefusedXmlException as exc:
        raise reader_error(
            source_name, last, f"refused unsafe XML ({type(exc).__name__})", "PubMed files need no entities."
        ) from exc
    except GZIP_ERRORS as exc:
        raise reader_error(
            source_name, last, f"damaged or truncated gzip data ({exc})", "Re-download the file."
        ) from exc


def read_pubmed_xml(
    path: str | Path,
    *,
    corpus: str = "pubmed",
    source_kind: SourceKind = "abstract",
    errors: ErrorSink = None,
    deleted: list[str] | None = None,
) -> Iterator[Document]:
    """Stream Documents from a PubMed baseline/update file (``.xml`` or ``.xml.gz``)."""
    path = Path(path)
    with open_binary(path) as fh:
        yield from iter_pubmed_stream(
            fh, str(path), corpus=corpus, source_kind=source_kind, errors=errors, deleted=deleted
        )
