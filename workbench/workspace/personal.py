"""Personal-document index inside the workspace: chunks and embeddings, encrypted, consent-governed.

A user's own documents (letters, discharge notes, lab PDFs) must not go into the shared literature
index. Here each document is a source (``register_source``: encrypted copy, consent grant) and its
chunks with their embeddings are rows of ``personal_chunks`` in the compartment's encrypted
database, with the usual provenance columns. Search goes through the governed read connection, so
only chunks of consented sources are found, and erasing the source removes its vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import WorkspaceError

if TYPE_CHECKING:
    from workbench.types import Chunk
    from workbench.workspace.store import Workspace

TABLE = "personal_chunks"
_DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    chunk_id VARCHAR, doc_id VARCHAR, patient_id VARCHAR, resource_id VARCHAR, source_file VARCHAR,
    source_id VARCHAR, import_id VARCHAR, title VARCHAR, section VARCHAR, "start" INTEGER, "end" INTEGER,
    text VARCHAR, embedding FLOAT[])"""


class PersonalIndex:
    """Chunks and vectors of the user's documents in one compartment."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def add(
        self,
        source_file: Path | str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        *,
        patient_id: str | None = None,
        purpose: str | None = None,
    ) -> str:
        """Store ``chunks`` of ``source_file`` with their ``vectors``; returns the source id.

        Adding the same file again replaces its chunks (one transaction).
        """
        path = Path(source_file)
        if len(chunks) != len(vectors):
            raise WorkspaceError(f"{path.name}: {len(chunks)} chunks but {len(vectors)} vectors")
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        source_id = self.ws.register_source(path, kind="user_document", sha256=sha, purpose=purpose)
        import_id = f"doc-{sha[:12]}"
        vecs = np.asarray(vectors, dtype=np.float32)
        rows = [
            [
                c.chunk_id,
                c.doc_id,
                patient_id,
                c.chunk_id,
                path.name,
                source_id,
                import_id,
                c.title,
                c.section,
                c.start,
                c.end,
                c.text,
                vecs[i].tolist(),
            ]
            for i, c in enumerate(chunks)
        ]
        con = self.ws.connect()
        con.execute(_DDL)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM {TABLE} WHERE source_id = ?", [source_id])
            if rows:
                con.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.ws.audit(
            "personal.index", source_id=source_id, chunks=len(rows), dim=int(vecs.shape[1]) if rows else 0
        )
        return source_id

    def search(self, vector: np.ndarray, *, k: int = 5, purpose: str | None = None) -> list[dict[str, Any]]:
        """The ``k`` chunks most similar (cosine) to ``vector`` among consented sources."""
        con = self.ws.connect(read_only=True, purpose=purpose)
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'records' AND table_name = ?", [TABLE]
        ).fetchone()
        if not exists or not exists[0]:
            return []
        q = np.asarray(vector, dtype=np.float32).ravel().tolist()
        cur = con.execute(
            f"SELECT chunk_id, doc_id, source_id, title, section, text, "
            f"list_cosine_similarity(embedding, ?::FLOAT[]) AS score FROM {TABLE} "
            "ORDER BY score DESC NULLS LAST LIMIT ?",
            [q, int(k)],
        )
        cols = [d[0] for d in cur.description]
        hits = [dict(zip(cols, r)) for r in cur.fetchall()]
        self.ws.audit("personal.search", k=k, hits=len(hits))
        return hits
