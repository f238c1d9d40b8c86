"""Keyed pseudonyms (HMAC-SHA256) and the per-workspace de-identification key.

A pseudonym depends only on the key, the kind and the normalised value, so the same
patient gets the same pseudonym from every source and every import, and nobody without
the workspace key can recompute or reverse it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import Protocol

from workbench.errors import DeidError

KEY_BYTES = 32

# kind -> (readable prefix, hex length). Record ids get 16 hex digits because a workspace
# can hold millions of resources and a collision would silently merge two rows in a join.
KINDS: dict[str, tuple[str, int]] = {
    "patient": ("P-", 12),
    "encounter": ("E-", 16),
    "observation": ("O-", 16),
    "claim": ("C-", 16),
    "resource": ("R-", 16),
    "practitioner": ("PR-", 12),
    "source": ("S-", 12),
    "file": ("F-", 12),
    "import": ("I-", 12),
    "mrn": ("MRN-", 12),
    "ssn": ("SSN-", 12),
    "phone": ("PH-", 12),
    "email": ("EM-", 12),
    "name": ("N-", 12),
    "address": ("A-", 12),
    "id": ("ID-", 12),
}

# Every record-id kind hashes in one domain, so a FHIR id pseudonymised as "encounter" in
# one table and referenced from another table gives the same digits.
_ID_KINDS = frozenset({"patient", "encounter", "observation", "claim", "resource", "practitioner", "id"})
_DIGIT_KINDS = frozenset({"phone", "ssn"})
_NON_DIGIT = re.compile(r"\D+")
_SPACES = re.compile(r"\s+")


def normalise(value: str, kind: str) -> str:
    """The canonical form of ``value`` that is hashed for ``kind``."""
    text = str(value).strip()
    if kind in _DIGIT_KINDS:
        digits = _NON_DIGIT.sub("", text)
        # A US phone with its country code is the same phone as without it.
        if kind == "phone" and len(digits) == 11 and digits.startswith("1"):
            digits = digits[1:]
        return digits
    if kind in _ID_KINDS:
        # References ("Patient/abc", "urn:uuid:abc") name the same resource as the bare id.
        if text.lower().startswith("urn:uuid:"):
            text = text[len("urn:uuid:") :]
        text = text.rsplit("/", 1)[-1]
        return text.casefold()
    return _SPACES.sub(" ", text).casefold()


def pseudonym(key: bytes, value: str, kind: str) -> str:
    """A keyed, stable pseudonym for ``value`` (e.g. ``P-1a2b3c4d5e6f`` for a patient id)."""
    if kind not in KINDS:
        raise DeidError(f"unknown pseudonym kind {kind!r}; use one of: {', '.join(sorted(KINDS))}")
    if len(key) < 16:
        raise DeidError("de-identification key is too short (need at least 16 bytes); use workspace_key()")
    prefix, width = KINDS[kind]
    domain = "id" if kind in _ID_KINDS else kind
    msg = f"{domain}\x00{normalise(value, kind)}".encode()
    return prefix + hmac.new(key, msg, hashlib.sha256).hexdigest()[:width]


def keyed_int(key: bytes, label: str, value: str) -> int:
    """A 64-bit integer derived from ``key`` for ``value`` (used for per-patient date offsets)."""
    digest = hmac.new(key, f"{label}\x00{value}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


class _HasRoot(Protocol):
    root: Path


def workspace_key(ws: _HasRoot | Path | str) -> bytes:
    """The workspace's 32-byte de-identification secret.

    An encrypted workspace derives it from its compartment key (``ws.secret("deid")``): it is
    never written anywhere and dies with the compartment. A plain folder (a path, or an object
    without ``secret``) keeps a random key created once at ``secrets/deid.key`` (0600, folder
    0700). This is the only access point to the key, so callers never depend on where it lives.
    """
    derive = getattr(ws, "secret", None)
    if callable(derive):
        key = derive("deid")
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise DeidError(
                "the workspace returned a malformed de-identification secret; reopen the workspace"
            )
        return key
    root = Path(ws) if isinstance(ws, str | Path) else Path(ws.root)
    return _file_key(root)


def _file_key(root: Path) -> bytes:
    folder = root / "secrets"
    path = folder / "deid.key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        tmp = folder / f".deid.key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(KEY_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                # link() never replaces: if another process created the key first, theirs wins.
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise DeidError(f"cannot read the de-identification key {path}: {exc.strerror}") from None
    if len(key) != KEY_BYTES:
        raise DeidError(
            f"de-identification key {path} has {len(key)} bytes, expected {KEY_BYTES}; "
            "restore it from a backup (a new key changes every pseudonym)"
        )
    return key
