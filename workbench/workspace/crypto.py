"""Key derivation and envelope encryption for the workspace.

Key hierarchy (every arrow is AES-256-GCM key wrapping with the key's name as associated data)::

    passphrase --Argon2id--> KEK --wraps--> master key
    master key --wraps--> compartment key (one per compartment) and the audit key
    compartment key --wraps--> database key (one per DuckDB generation) and source keys (one per source)

Destroying a source key crypto-shreds its encrypted file copy; rotating the passphrase only
re-wraps the master key. Argon2id parameters live in the keyring header so they can be raised later.

``WB_KDF_PROFILE=fast`` (tests) lowers Argon2id to 1 pass over 1 MiB; the default profile takes
about 0.2-0.3 s on an idle laptop core (96 MiB, 3 passes). ``WB_KDF_MEMORY_KIB`` / ``WB_KDF_TIME_COST`` set them exactly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from workbench.errors import WorkspaceError

KEY_BYTES = 32
NONCE_BYTES = 12
#: Magic prefix of encrypted blobs (files, cache entries) so a plaintext file is never mistaken for one.
BLOB_MAGIC = b"WBENC1\n"


class DecryptionFailed(WorkspaceError):
    """Ciphertext did not authenticate: wrong key, or the bytes were altered."""


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id parameters stored in the keyring header."""

    salt: str  # base64
    time_cost: int
    memory_cost: int  # KiB
    parallelism: int = 1
    algorithm: str = "argon2id"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def new_kdf_params() -> KdfParams:
    """Fresh salt with the cost of the active profile (see module docstring)."""
    if os.environ.get("WB_KDF_PROFILE", "").lower() == "fast":
        time_cost, memory = 1, 1024
    else:
        time_cost, memory = 3, 96 * 1024
    time_cost = int(os.environ.get("WB_KDF_TIME_COST", time_cost))
    memory = int(os.environ.get("WB_KDF_MEMORY_KIB", memory))
    return KdfParams(salt=b64(os.urandom(16)), time_cost=time_cost, memory_cost=memory)


def derive_kek(passphrase: str, params: KdfParams) -> bytes:
    """The key-encryption key for ``passphrase`` (memory-hard, slow on purpose)."""
    if params.algorithm != "argon2id":
        raise WorkspaceError(f"unsupported KDF {params.algorithm!r} in the keyring; upgrade the workbench")
    return hash_secret_raw(
        passphrase.encode("utf-8"),
        unb64(params.salt),
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        hash_len=KEY_BYTES,
        type=Type.ID,
    )


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_BYTES)


def wrap(kek: bytes, key: bytes, *, name: str) -> str:
    """Encrypt ``key`` under ``kek``; ``name`` is bound as associated data (no swapping entries)."""
    nonce = os.urandom(NONCE_BYTES)
    return b64(nonce + AESGCM(kek).encrypt(nonce, key, name.encode()))


def unwrap(kek: bytes, wrapped: str, *, name: str) -> bytes:
    """Decrypt a wrapped key; :class:`DecryptionFailed` when ``kek`` is wrong or the entry altered."""
    raw = unb64(wrapped)
    try:
        return AESGCM(kek).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], name.encode())
    except InvalidTag as exc:
        raise DecryptionFailed(f"key {name!r} does not unwrap") from exc


def encrypt_blob(key: bytes, data: bytes, *, aad: str) -> bytes:
    """AES-256-GCM encrypt ``data`` into a self-describing blob."""
    nonce = os.urandom(NONCE_BYTES)
    return BLOB_MAGIC + nonce + AESGCM(key).encrypt(nonce, data, aad.encode())


def decrypt_blob(key: bytes, blob: bytes, *, aad: str) -> bytes:
    """Inverse of :func:`encrypt_blob`."""
    if not blob.startswith(BLOB_MAGIC):
        raise DecryptionFailed(f"{aad}: not an encrypted workbench blob")
    body = blob[len(BLOB_MAGIC) :]
    try:
        return AESGCM(key).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad.encode())
    except InvalidTag as exc:
        raise DecryptionFailed(f"{aad}: ciphertext does not authenticate (altered or wrong key)") from exc


def subkey(key: bytes, info: str) -> bytes:
    """A purpose-bound key derived from ``key`` with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info.encode()).derive(key)


def key_check(master: bytes) -> str:
    """Key-check value: proves a passphrase right before anything is touched."""
    return b64(hmac.new(master, b"workbench key check v1", hashlib.sha256).digest())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


#: Source files are encrypted in segments so a multi-gigabyte export never sits whole in memory.
SEGMENT = 4 * 1024 * 1024
FILE_MAGIC = b"WBSEG1\n"


def encrypt_file(key: bytes, src: Path, dst_fh: BinaryIO, *, aad: str) -> int:
    """Encrypt ``src`` into ``dst_fh`` segment by segment; returns plaintext bytes.

    Each segment's associated data binds its index and whether it is the last one, so
    dropping, reordering or truncating segments fails authentication.
    """
    aes = AESGCM(key)
    dst_fh.write(FILE_MAGIC)
    total, index = 0, 0
    with open(src, "rb") as fh:
        chunk = fh.read(SEGMENT)
        while True:
            nxt = fh.read(SEGMENT) if chunk else b""
            last = not nxt
            nonce = os.urandom(NONCE_BYTES)
            ct = aes.encrypt(nonce, chunk, f"{aad}|{index}|{int(last)}".encode())
            dst_fh.write(len(ct).to_bytes(4, "big") + nonce + ct)
            total += len(chunk)
            index += 1
            if last:
                return total
            chunk = nxt


def decrypt_file(key: bytes, src: Path, *, aad: str) -> Iterator[bytes]:
    """Yield the plaintext segments of a file written by :func:`encrypt_file`."""
    aes = AESGCM(key)
    with open(src, "rb") as fh:
        if fh.read(len(FILE_MAGIC)) != FILE_MAGIC:
            raise DecryptionFailed(f"{src.name}: not an encrypted workbench file")
        index = 0
        while True:
            head = fh.read(4)
            if len(head) < 4:
                raise DecryptionFailed(f"{src.name}: truncated encrypted file")
            size = int.from_bytes(head, "big")
            nonce = fh.read(NONCE_BYTES)
            ct = fh.read(size)
            last = fh.peek(1)[:1] == b"" if hasattr(fh, "peek") else False
            try:
                plain = aes.decrypt(nonce, ct, f"{aad}|{index}|{int(last)}".encode())
            except InvalidTag as exc:
                raise DecryptionFailed(f"{src.name}: segment {index} does not authenticate") from exc
            yield plain
            if last:
                return
            index += 1
