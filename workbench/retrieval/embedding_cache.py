"""A content-addressed cache of passage embeddings.

Encoding the shipped corpora on a 2-core CPU takes many minutes, so the repository ships
the vectors of every shipped passage, keyed by ``sha256(model fingerprint, passage text)``.
An index build looks each passage up and encodes only the misses, so the cache can never
serve a vector for text or a model it was not computed from. ``workbench index build
--no-cache`` re-encodes everything, and `workbench index build --write-cache` regenerates
the shipped file from fresh encodings.

Vectors are stored as float16 (half the size; cosine error below 1e-3) and re-normalised
on read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from workbench.errors import IndexCorrupt
from workbench.retrieval.embedder import Embedder


def passage_key(fingerprint: str, text: str) -> bytes:
    """16-byte key of one passage under one model."""
    return hashlib.sha256(f"{fingerprint}\0{text}".encode()).digest()[:16]


class EmbeddingCache:
    """Vectors for passages under one model fingerprint, loaded from / saved to an ``.npz``."""

    def __init__(
        self, fingerprint: str, keys: np.ndarray | None = None, vectors: np.ndarray | None = None
    ) -> None:
        self.fingerprint = fingerprint
        self._pos: dict[bytes, int] = {}
        self._vectors = vectors if vectors is not None else np.zeros((0, 0), dtype=np.float16)
        if keys is not None:
            # keys are stored as (n, 16) uint8: numpy's fixed-width bytes type drops trailing
            # NUL bytes, which would make 1 key in 256 unreadable
            self._pos = {bytes(k): i for i, k in enumerate(np.asarray(keys, dtype=np.uint8))}
            if len(self._pos) != len(self._vectors):
                raise IndexCorrupt("embedding cache has duplicate or missing keys; rebuild it")
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._pos)

    @staticmethod
    def path_for(folder: Path, fingerprint: str) -> Path:
        return folder / f"{fingerprint}.npz"

    @classmethod
    def load(cls, folder: Path, fingerprint: str) -> EmbeddingCache:
        """The cache file for ``fingerprint`` in ``folder``; empty if there is none."""
        path = cls.path_for(folder, fingerprint)
        if not path.exists():
            return cls(fingerprint)
        meta_path = path.with_suffix(".json")
        if meta_path.exists():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != meta.get("sha256"):
                raise IndexCorrupt(
                    f"{path} does not match the checksum in {meta_path.name}; restore it from git"
                )
        try:
            with np.load(path) as data:
                keys, vectors = data["keys"], data["vectors"]
        except Exception as exc:  # numpy raises several types for damaged archives
            raise IndexCorrupt(f"cannot read embedding cache {path}: {exc}") from exc
        return cls(fingerprint, keys, vectors)

    def save(self, folder: Path) -> Path:
        """Write the cache (and a checksum sidecar) atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        path = self.path_for(folder, self.fingerprint)
        ordered = sorted(self._pos, key=self._pos.__getitem__)
        keys = np.frombuffer(b"".join(ordered), dtype=np.uint8).reshape(len(ordered), 16)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, keys=keys, vectors=self._vectors)
        os.replace(tmp, path)
        meta = {
            "fingerprint": self.fingerprint,
            "passages": len(self),
            "dtype": "float16",
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return path

    def encode(
        self,
        embedder: Embedder,
        texts: list[str],
        *,
        show_progress: bool = False,
        checkpoint: Path | None = None,
        block: int = 2048,
    ) -> np.ndarray:
        """Vectors for ``texts``: cached ones read back, the rest encoded and added.

        With ``checkpoint`` the cache is saved there after every ``block`` encoded passages,
        so an interrupted build resumes where it stopped.
        """
        if embedder.fingerprint != self.fingerprint:
            raise ValueError("embedding cache belongs to another model")
        keys = [passage_key(self.fingerprint, t) for t in texts]
        out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
        missing = [i for i, k in enumerate(keys) if k not in self._pos]
        found = [i for i, k in enumerate(keys) if k in self._pos]
        if found:
            vec = self._vectors[[self._pos[keys[i]] for i in found]].astype(np.float32)
            vec /= np.linalg.norm(vec, axis=1, keepdims=True).clip(min=1e-12)
            out[found] = vec
        # encode in length order: batches of similar length waste less padding
        order = sorted(missing, key=lambda i: len(texts[i]))
        bar = None
        if show_progress and order:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(order), desc="encoding", unit="passage")
        for start in range(0, len(order), block):
            part = order[start : start + block]
            fresh = embedder.encode([texts[i] for i in part])
            out[part] = fresh
            self._add([keys[i] for i in part], fresh)
            if checkpoint is not None:
                self.save(checkpoint)
            if bar is not None:
                bar.update(len(part))
        if bar is not None:
            bar.close()
        self.hits += len(found)
        self.misses += len(missing)
        return out

    def merge(self, other: EmbeddingCache) -> None:
        """Add every passage of ``other`` (same model) that this cache lacks."""
        if other.fingerprint != self.fingerprint:
            raise ValueError("cannot merge embedding caches of different models")
        keys = sorted(other._pos, key=other._pos.__getitem__)
        if keys:
            self._add(keys, other._vectors[[other._pos[k] for k in keys]])

    def _add(self, keys: list[bytes], vectors: np.ndarray) -> None:
        new = {k: i for i, k in enumerate(keys) if k not in self._pos}
        if not new:
            return
        base = len(self._vectors) if self._vectors.size else 0
        rows = vectors[list(new.values())].astype(np.float16)
        self._vectors = np.concatenate([self._vectors, rows]) if base else rows
        for j, k in enumerate(new):
            self._pos[k] = base + j
