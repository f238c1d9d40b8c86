"""Readers on real files: BEIR JSONL, PubMed XML, PubMedQA JSON, MedQuAD XML, Markdown, HTML, PDF, text."""

from __future__ import annotations

import gzip
import io
import json
import logging
import shutil
import tarfile
from pathlib import Path

import pytest

from workbench.corpus import (
    chunk_document,
    detect_format,
    read_beir_jsonl,
    read_documents,
    read_medquad,
    read_pubmed_xml,
    read_pubmedqa,
)
from workbench.corpus import pubmedqa as pubmedqa_mod
from workbench.errors import ReaderError
from workbench.types import Document

FIX = Path(__file__).parent / "fixtures" / "corpus"


def _sections_text(doc: Document) -> dict[str, str]:
    return {s.name: doc.text[s.start : s.end] for s in doc.sections}


def _gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0))
    return path


# ------------------------------------------------------------------------------------------------ BEIR


def test_beir_reads_real_scifact_lines() -> None:
    docs = list(read_beir_jsonl(FIX / "scifact_sample.jsonl", corpus="scifact"))
    raw = [
        json.loads(line) for line in (FIX / "scifact_sample.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [d.doc_id for d in docs] == [r["_id"] for r in raw]
    for d, r in zip(docs, raw):
        assert d.text == r["text"] and d.title == r["title"].strip() and d.corpus == "scifact"
        assert d.source_kind == "abstract" and d.sections[0].name == "Abstract"
        assert d.metadata["source_file"] == "scifact_sample.jsonl"
    assert docs[2].metadata["source_line"] == 3


def test_beir_gzip_equals_plain(tmp_path: Path) -> None:
    gz = _gz(tmp_path / "corpus.jsonl.gz", (FIX / "scifact_sample.jsonl").read_bytes())
    assert [d.doc_id for d in read_documents(gz)] == [
        d.doc_id for d in read_beir_jsonl(FIX / "scifact_sample.jsonl")
    ]


def _bad_jsonl(tmp_path: Path) -> Path:
    lines = [
        b'{"_id": "1", "title": "A", "text": "First."}',
        b"",
        b'{"_id": "2", "title": "B", "text": "Second."',  # truncated object
        '{"_id": "3", "title": "caf\u00e9", "text": "x"}'.encode("latin-1"),  # not UTF-8
        b'{"title": "no id", "text": "x"}',
        b'{"_id": 4, "title": "", "text": "Fourth."}',
        b'{"_id": "5", "title": "Only a title", "text": ""}',
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_beir_bad_lines_raise_by_default_naming_file_and_line(tmp_path: Path) -> None:
    path = _bad_jsonl(tmp_path)
    it = read_beir_jsonl(path)
    assert next(it).doc_id == "1"
    with pytest.raises(ReaderError, match=r"bad\.jsonl \(line 3\): malformed JSON"):
        next(it)


def test_beir_bad_lines_are_skipped_and_reported_with_an_errors_list(tmp_path: Path) -> None:
    path = _bad_jsonl(tmp_path)
    errors: list[ReaderError] = []
    docs = list(read_beir_jsonl(path, errors=errors))
    assert [d.doc_id for d in docs] == ["1", "4", "5"]
    assert [str(e).split(": ", 1)[0].rsplit("(", 1)[1] for e in errors] == ["line 3)", "line 4)", "line 5)"]
    assert "not valid UTF-8" in str(errors[1]) and '"_id"' in str(errors[2])
    assert docs[2].text == "Only a title" and docs[2].sections[0].name == "Title"


def test_truncated_gzip_raises_after_yielding_what_was_read(tmp_path: Path) -> None:
    data = (FIX / "scifact_sample.jsonl").read_bytes() * 40
    full = gzip.compress(data, mtime=0)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(full[: len(full) * 2 // 3])
    seen: list[str] = []
    with pytest.raises(ReaderError, match=r"cut\.jsonl\.gz \(after line \d+\): damaged or truncated gzip"):
        for d in read_documents(path, errors=[]):  # file-level damage raises even with an errors list
            seen.append(d.doc_id)
    assert len(seen) > 5


# ---------------------------------------------------------------------------------------------- PubMed


def test_pubmed_xml_fields() -> None:
    deleted: list[str] = []
    docs = {d.doc_id: d for d in read_pubmed_xml(FIX / "pubmed_sample.xml", deleted=deleted)}
    assert list(docs) == ["90000001", "90000002", "90000003", "90000004"]
    assert deleted == ["80000001", "80000002"]

    a = docs["90000001"]
    assert a.title == "Low-dose aspirin and the risk of stroke in adults over 70: a randomised trial."
    secs = _sections_text(a)
    assert list(secs) == ["BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS AND RELEVANCE"]
    assert secs["METHODS"].startswith("We randomly assigned 1,200 adults")
    assert secs["CONCLUSIONS AND RELEVANCE"].endswith("adults over 70.")
    assert a.metadata | {} == {
        "pmid": "90000001",
        "doi": "10.9999/jict.2020.0101",
        "journal": "Journal of Invented Clinical Trials",
        "year": 2020,
        "publication_types": ["Randomized Controlled Trial", "Journal Article"],
        "mesh": ["Aged", "Aspirin", "Stroke"],
        "language": ["eng"],
        "source_file": "pubmed_sample.xml",
        "pmcid": "PMC9000001",
    }
    b = docs["90000002"]
    assert (
        b.metadata["year"] == 1998 and b.metadata["doi"] == "10.9999/irn.1998.0002"
    )  # MedlineDate, ELocationID
    assert "HbA1c" in b.text and "\u03b2-cell" in b.text and "copyright" not in b.text
    assert [s.name for s in b.sections] == ["Abstract"]
    c = docs["90000003"]  # no abstract, no DOI, only the journal abbreviation, year from history
    assert (c.text, c.sections[0].name, c.metadata["doi"], c.metadata["journal"], c.metadata["year"]) == (
        "Letter: walking and blood pressure.",
        "Title",
        "",
        "Invent Lett",
        1987,
    )
    d = docs["90000004"]  # empty ArticleTitle: the vernacular title; empty Label: NlmCategory
    assert d.title == "Schlaf und Blutdruck bei Erwachsenen." and [s.name for s in d.sections] == [
        "OBJECTIVE",
        "RESULTS",
    ]
    chunks = chunk_document(a, max_tokens=40, overlap=0)
    assert {c.section for c in chunks} == set(secs)
    assert chunks[0].metadata["publication_types"] == ["Randomized Controlled Trial", "Journal Article"]


def test_pubmed_gzip_and_detection(tmp_path: Path) -> None:
    gz = _gz(tmp_path / "pubmed25n0001.xml.gz", (FIX / "pubmed_sample.xml").read_bytes())
    assert detect_format(gz.name, (FIX / "pubmed_sample.xml").read_bytes()[:4096]) == "pubmed"
    assert [d.doc_id for d in read_documents(gz)] == ["90000001", "90000002", "90000003", "90000004"]
    assert {d.corpus for d in read_documents(gz, corpus="pubmed-baseline")} == {"pubmed-baseline"}


def test_truncated_pubmed_xml_names_last_good_pmid(tmp_path: Path) -> None:
    data = (FIX / "pubmed_sample.xml").read_bytes()
    cut = data[: data.index(b'<PMID Version="1">90000003')]
    path = tmp_path / "cut.xml"
    path.write_bytes(cut)
    got: list[str] = []
    with pytest.raises(
        ReaderError, match=r"cut\.xml \(after PMID 90000002, line \d+ column \d+\): malformed or truncated"
    ):
        for doc in read_pubmed_xml(path):
            got.append(doc.doc_id)
    assert got == ["90000001", "90000002"]


def test_pubmed_refuses_entity_expansion(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
        "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>"
        "<ArticleTitle>&b;</ArticleTitle></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>",
        encoding="utf-8",
    )
    with pytest.raises(ReaderError, match="refused unsafe XML"):
        list(read_pubmed_xml(path))


def test_pubmed_article_without_pmid_is_a_record_error(tmp_path: Path) -> None:
    data = (FIX / "pubmed_sample.xml").read_text(encoding="utf-8")
    path = tmp_path / "nopmid.xml"
    path.write_text(data.replace('<PMID Version="1">90000002</PMID>', ""), encoding="utf-8")
    errors: list[ReaderError] = []
    assert [d.doc_id for d in read_pubmed_xml(path, errors=errors)] == ["90000001", "90000003", "90000004"]
    assert len(errors) == 1 and "without a PMID" in str(errors[0]) and "nopmid.xml" in str(errors[0])
    with pytest.raises(ReaderError, match="without a PMID"):
        list(read_pubmed_xml(path))


def test_xml_that_is_not_pubmed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.xml"
    path.write_text("<?xml version='1.0'?><Other><x/></Other>", encoding="utf-8")
    with pytest.raises(ReaderError, match="not a PubMed file"):
        list(read_pubmed_xml(path))
    with pytest.raises(ReaderError, match="unsupported or unrecognised format"):
        list(read_documents(path))


# -------------------------------------------------------------------------------------------- PubMedQA


def test_pubmedqa_fixture() -> None:
    raw = json.loads((FIX / "pubmedqa_sample.json").read_text(encoding="utf-8"))
    docs = list(read_pubmedqa(FIX / "pubmedqa_sample.json"))
    assert [d.doc_id for d in docs] == list(raw)
    for d in docs:
        rec = raw[d.doc_id]
        assert [s.name for s in d.sections] == rec["LABELS"]
        assert [d.text[s.start : s.end] for s in d.sections] == [c.strip() for c in rec["CONTEXTS"]]
        assert d.metadata["pmid"] == d.doc_id and d.metadata["mesh"] == rec["MESHES"]
        assert d.metadata["question"] == rec["QUESTION"] and rec["QUESTION"] not in d.title
    assert docs[0].metadata["year"] == 2000 and docs[2].metadata["year"] is None


def test_pubmedqa_never_copies_answer_fields(tmp_path: Path) -> None:
    raw = json.loads((FIX / "pubmedqa_sample.json").read_text(encoding="utf-8"))
    for rec in raw.values():
        rec.update(final_decision="yes", LONG_ANSWER="SECRET ANSWER", reasoning_required_pred="yes")
    path = tmp_path / "ori_pqal.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    for d in read_pubmedqa(path):
        assert "SECRET" not in json.dumps(d.metadata) + d.text and "final_decision" not in d.metadata


@pytest.mark.parametrize("block", [1, 3, 7, 64])
def test_json_object_streaming_matches_json_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, block: int
) -> None:
    obj = {
        "1": {"a": [1.5, -2e-3, 12345678901234567890, True, None, 'x\u00e9\u4e2d"\\']},
        "22": 7,
        "333": "s" * 50,
    }
    path = tmp_path / "o.json"
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2), encoding="utf-8")
    monkeypatch.setattr(pubmedqa_mod, "_READ", block)  # tiny windows exercise every boundary case
    assert dict(pubmedqa_mod.iter_json_object_items(path)) == obj


def test_truncated_and_malformed_pubmedqa_json_name_the_pmid(tmp_path: Path) -> None:
    text = (FIX / "pubmedqa_sample.json").read_text(encoding="utf-8")
    cut = tmp_path / "cut.json"
    cut.write_text(text[: text.index('"23831910"') + 200], encoding="utf-8")
    got: list[str] = []
    with pytest.raises(ReaderError, match=r"cut\.json \(PMID 23831910\): malformed or truncated JSON"):
        for d in read_pubmedqa(cut):
            got.append(d.doc_id)
    assert got == ["10808977"]
    bad = tmp_path / "bad.json"
    bad.write_text(text.replace('"23831910": {', '"23831910": {,', 1), encoding="utf-8")
    with pytest.raises(ReaderError, match=r"PMID 23831910"):
        list(read_pubmedqa(bad))
    shape = tmp_path / "shape.json"
    shape.write_text(
        json.dumps({"1": {"CONTEXTS": "not a list"}, "2": {"CONTEXTS": ["ok."], "LABELS": ["X"]}})
    )
    errors: list[ReaderError] = []
    assert [d.doc_id for d in read_pubmedqa(shape, errors=errors)] == ["2"]
    assert "PMID 1" in str(errors[0])


# --------------------------------------------------------------------------------------------- MedQuAD


def test_medquad_folder() -> None:
    docs = {d.doc_id: d for d in read_medquad(FIX / "medquad")}
    # 5_NIDDK_QA/0000056.xml has no answers: no document
    assert sorted(docs) == ["CDC-0000438", "MPlusHealthTopics-0000033", "NINDS-0000007"]
    mp = docs["MPlusHealthTopics-0000033"]
    assert mp.source_kind == "guideline" and mp.title == "Anatomy"
    assert mp.metadata["url"] == "https://www.nlm.nih.gov/medlineplus/anatomy.html"
    assert mp.metadata["source"] == "MPlusHealthTopics" and mp.metadata["qtypes"] == ["information"]
    (name,) = _sections_text(mp)
    assert name == "Do you have information about Anatomy"
    assert "body's parts" in mp.text  # &apos; decoded
    ninds = docs["NINDS-0000007"]  # the lower-case <doc>/<pair> variant
    assert ninds.title == "Holmes-Adie" and len(ninds.sections) >= 2
    assert ninds.metadata["url"].startswith("http://www.ninds.nih.gov/")
    for d in docs.values():
        assert all(d.text[s.start : s.end].strip() == d.text[s.start : s.end] for s in d.sections)
        assert "  " not in d.text  # whitespace from the XML indentation is tidied
        (c0, *_) = chunk_document(d)
        assert c0.metadata["url"] == d.metadata["url"] and c0.section == d.sections[0].name


def test_medquad_bad_file_in_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mq"
    shutil.copytree(FIX / "medquad", folder)
    (folder / "9_CDC_QA" / "0000999.xml").write_text("<Document id='x'><QAPairs><QAPair>", encoding="utf-8")
    (folder / "9_CDC_QA" / "0000998.xml").write_text(
        '<!DOCTYPE Document [<!ENTITY e "x">]><Document id="y"><Focus>&e;</Focus></Document>',
        encoding="utf-8",
    )
    errors: list[ReaderError] = []
    assert len(list(read_medquad(folder, errors=errors))) == 3
    assert sorted(Path(str(e).split(":")[0]).name for e in errors) == ["0000998.xml", "0000999.xml"]
    assert "refused unsafe XML" in str(errors[0]) and "malformed XML" in str(errors[1])
    with pytest.raises(ReaderError, match=r"0000998\.xml: refused unsafe XML"):
        list(read_documents(folder))


# -------------------------------------------------------------------------------- Markdown, HTML, text


def test_markdown_sections_follow_headings() -> None:
    (doc,) = read_documents(FIX / "guide.md", corpus="clinic")
    assert doc.title == "Clinic guide: managing high blood pressure" and doc.source_kind == "user_document"
    secs = _sections_text(doc)
    assert list(secs) == [
        "",
        "Diagnosis",
        "Diagnosis > Home monitoring",
        "Diagnosis > Lifestyle",
        "Diagnosis > Medication options",
    ]
    assert secs[""].startswith("This guide is for adults") and "version: 3" not in doc.text
    assert "# not a heading" in secs["Diagnosis > Home monitoring"]  # code fence is not a heading
    assert secs["Diagnosis > Lifestyle"].startswith("Lifestyle\n---")
    assert doc.doc_id == "clinic:guide.md" and len(doc.metadata["sha256"]) == 64


def test_html_visible_text_and_heading_sections() -> None:
    (doc,) = read_documents(FIX / "guide.html")
    assert doc.title == "Asthma action plan (invented example)"
    for hidden in ("tracking", "font-family", "hidden", "Enable JavaScript", "Home"):
        assert hidden not in doc.text
    secs = _sections_text(doc)
    assert list(secs) == [
        "Asthma action plan",
        "Asthma action plan > Green zone",
        "Asthma action plan > Yellow zone",
        "Asthma action plan > Yellow zone > When to call",
        "Asthma action plan > Red zone",
    ]
    assert secs["Asthma action plan > Green zone"] == (
        "Green zone\nBreathing is good. Take your controller medicine every day.\nNo cough at night\nCan work and play"
    )
    assert "wheeze & tight chest.\nAdd your reliever" in doc.text


def test_latin1_files_are_decoded_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes("Caf\u00e9 au lait \u2013 na\u00efve advice.".encode("cp1252"))
    with caplog.at_level(logging.WARNING, logger="workbench.corpus"):
        (doc,) = read_documents(path)
    assert doc.text == "Caf\u00e9 au lait \u2013 na\u00efve advice." and "not UTF-8" in caplog.text
    html = tmp_path / "old.html"
    html.write_bytes(
        '<html><head><meta charset="iso-8859-1"></head><body><h1>R\u00e9sum\u00e9</h1></body></html>'.encode(
            "latin-1"
        )
    )
    (hdoc,) = read_documents(html)
    assert hdoc.sections[0].name == "R\u00e9sum\u00e9"


# ------------------------------------------------------------------------------------------------ PDF


def _pdf(pages: list[str], title: str = "Invented PDF guideline") -> bytes:
    """A minimal valid PDF (Helvetica text, one line per page; '' makes an empty page)."""
    objs: list[bytes] = []
    n_pages = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n_pages))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b""
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objs.append(f"<< /Title ({title}) >>".encode())
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objs) + 1, len(objs), xref)
    )
    return out.getvalue()


def test_pdf_pages_become_sections(tmp_path: Path) -> None:
    path = tmp_path / "guideline.pdf"
    path.write_bytes(_pdf(["Statins lower LDL cholesterol.", "Check liver tests at baseline.", ""]))
    (doc,) = read_documents(path, corpus="mine")
    assert doc.title == "Invented PDF guideline" and doc.doc_id == "mine:guideline.pdf"
    assert _sections_text(doc) == {
        "page 1": "Statins lower LDL cholesterol.",
        "page 2": "Check liver tests at baseline.",
    }
    assert doc.metadata["pages"] == 3 and doc.metadata["pages_without_text"] == [3]
    assert [c.section for c in chunk_document(doc)] == ["page 1", "page 2"]


def test_encrypted_and_damaged_pdfs_are_reader_errors(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_pdf(["Secret page."]))))
    writer.encrypt("s3cret")
    enc = tmp_path / "locked.pdf"
    with open(enc, "wb") as fh:
        writer.write(fh)
    with pytest.raises(ReaderError, match=r"locked\.pdf: the PDF is encrypted"):
        list(read_documents(enc))
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\nnot really a pdf")
    with pytest.raises(ReaderError, match=r"broken\.pdf"):
        list(read_documents(broken))


# ------------------------------------------------------------------------------------------ dispatcher


def test_detect_format() -> None:
    assert detect_format("corpus.jsonl.gz") == "beir"
    assert detect_format("ori_pqal.json") == "pubmedqa"
    assert detect_format("ori_pqal.json", b'{"1": {"QUESTION": "q", "CONTEXTS": []}}') == "pubmedqa"
    assert detect_format("package.json", b'{"name": "x"}') is None
    assert detect_format("notes.MD") == "markdown"
    assert detect_format("x.xml", b"<?xml version='1.0'?>\n<Document id='1'>") == "medquad"
    assert detect_format("noext", b"%PDF-1.7") == "pdf"
    assert detect_format("noext", b'{"_id": "1", "text": ""}\n') == "beir"
    assert detect_format("noext", b"<!DOCTYPE html><html>") == "html"
    assert detect_format("noext", b"\x00\x01") is None


def test_archive_folder_and_error_policy(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted((FIX / "medquad").rglob("*.xml")):
            tar.add(p, arcname=p.relative_to(FIX / "medquad").as_posix())
        tar.add(FIX / "guide.md", arcname="docs/guide.md")
        junk = tarfile.TarInfo("__MACOSX/._guide.md")
        junk.size = 3
        tar.addfile(junk, io.BytesIO(b"???"))
    arch = tmp_path / "bundle.tar.gz"
    arch.write_bytes(buf.getvalue())
    docs = list(read_documents(arch, corpus="bundle"))
    assert sorted(d.doc_id for d in docs) == [
        "CDC-0000438",
        "MPlusHealthTopics-0000033",
        "NINDS-0000007",
        "bundle:docs/guide.md",
    ]
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ReaderError, match=r"cut\.tar\.gz \(at member .*\): damaged or truncated archive"):
        list(read_documents(cut))

    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(FIX / "guide.md", folder / "a.md")
    (folder / "b.jsonl").write_text('{"_id": "1", "text": "ok"}\n{broken\n', encoding="utf-8")
    (folder / "c.json").write_text('{"name": "some other json"}', encoding="utf-8")  # not PubMedQA: skipped
    (folder / ".hidden.md").write_text("# secret", encoding="utf-8")
    errors: list[ReaderError] = []
    assert [d.doc_id for d in read_documents(folder, errors=errors)] == ["user:a.md", "1"]
    assert len(errors) == 1 and "b.jsonl (line 2)" in str(errors[0])
    with pytest.raises(ReaderError, match=r"b\.jsonl \(line 2\)"):
        list(read_documents(folder))
    with pytest.raises(ReaderError, match="no such file"):
        list(read_documents(tmp_path / "missing.jsonl"))
    with pytest.raises(ReaderError, match="unknown format 'docx'"):
        list(read_documents(folder, format="docx"))


def test_zip_archive_and_error_callback(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "docs.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(FIX / "guide.html", "site/guide.html")
        zf.write(FIX / "pubmed_sample.xml", "pubmed/part1.xml")
        zf.writestr("pubmed/bad.jsonl", b'{"_id": "x", "text": "fine"}\n{oops\n')
        zf.writestr("__MACOSX/site/._guide.html", b"junk")
        zf.writestr("photo.jpg", b"\xff\xd8\xff")
    seen: list[str] = []
    docs = list(read_documents(path, corpus="z", errors=lambda e: seen.append(str(e))))
    assert [d.doc_id for d in docs] == [
        "x",
        "90000001",
        "90000002",
        "90000003",
        "90000004",
        "z:site/guide.html",
    ]
    assert len(seen) == 1 and "docs.zip!pubmed/bad.jsonl (line 2)" in seen[0]
    broken = tmp_path / "broken.zip"
    broken.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ReaderError, match=r"broken\.zip: damaged or truncated zip"):
        list(read_documents(broken))


def test_bom_first_line_and_bad_bytes_in_xml(tmp_path: Path) -> None:
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"_id": "1", "title": "t", "text": "x"}\n')
    assert [d.doc_id for d in read_documents(bom)] == ["1"]
    bad = tmp_path / "bad.xml"
    bad.write_bytes(
        (FIX / "pubmed_sample.xml").read_bytes().replace(b"Doe", b"D\xf6e")
    )  # latin-1 byte in UTF-8 XML
    with pytest.raises(
        ReaderError, match=r"bad\.xml \(before the first article, line \d+ column \d+\): malformed"
    ):
        list(read_pubmed_xml(bad))


def test_truncated_pubmed_gzip(tmp_path: Path) -> None:
    data = gzip.compress((FIX / "pubmed_sample.xml").read_bytes() * 1, mtime=0)
    path = tmp_path / "cut.xml.gz"
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(ReaderError, match=r"cut\.xml\.gz .*(truncated gzip|malformed or truncated XML)"):
        list(read_documents(path))
