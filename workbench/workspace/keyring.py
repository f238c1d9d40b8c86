"""The keyring: one JSON file holding the KDF header and every wrapped key of a workspace.

Keeping all wrapped keys in one file makes every key change (new source, erasure, passphrase
rotation, database re-key) a single atomic rename. Writers hold ``.keyring.lock``.
The derived master key is cached in this process's memory only, so reopening is cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.errors import WorkspaceError, WrongPassphrase
from workbench.workspace import crypto
from workbench.workspace._fs import atomic_write, locked

KEYRING_NAME = "keyring.json"
LOCK_NAME = ".keyring.lock"
FORMAT = "workbench-keyring"
VERSION = 1

_MASTER_CACHE: dict[str, bytes] = {}
#: HMAC(master, passphrase) of passphrases already proven in this process: a repeated open with
#: the same passphrase (e.g. from WB_PASSPHRASE) skips the KDF without weakening the check.
_PROVEN: dict[str, bytes] = {}
_CACHE_LOCK = threading.Lock()


def keyring_path(root: Path) -> Path:
    return root / KEYRING_NAME


def exists(root: Path) -> bool:
    """True when ``root`` holds an initialised workspace."""
    return keyring_path(root).is_file()


def load(root: Path) -> dict[str, Any]:
    """Read the keyring (never partially written: it is replaced by rename)."""
    path = keyring_path(root)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise WorkspaceError(
            f"{root}: not an initialised workspace (run `workbench workspace init`)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise WorkspaceError(f"{path}: keyring is damaged ({exc.msg}); restore it from a backup") from exc
    if data.get("format") != FORMAT:
        raise WorkspaceError(f"{path}: not a workbench keyring")
    if int(data.get("version", 0)) > VERSION:
        raise WorkspaceError(f"{path}: keyring version {data['version']} is newer than this workbench")
    return data


def save(root: Path, data: dict[str, Any]) -> None:
    """Atomically replace the keyring (caller holds the lock)."""
    atomic_write(keyring_path(root), json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))


def update(root: Path, fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read-modify-write the keyring under its lock; returns the new content."""
    with locked(root / LOCK_NAME):
        data = load(root)
        fn(data)
        save(root, data)
        return data


def _cache_key(root: Path, data: dict[str, Any]) -> str:
    return f"{os.path.realpath(root)}|{data['kdf']['salt']}|{data['wrapped_master']}"


def create(root: Path, passphrase: str) -> bytes:
    """Write a fresh keyring for ``root``; returns the new master key."""
    params = crypto.new_kdf_params()
    kek = crypto.derive_kek(passphrase, params)
    master = crypto.new_key()
    data: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "workspace_id": uuid.uuid4().hex,
        "created": time.time(),
        "kdf": params.to_dict(),
        "wrapped_master": crypto.wrap(kek, master, name="master"),
        "key_check": crypto.key_check(master),
        "audit_key": crypto.wrap(master, crypto.new_key(), name="audit"),
        "compartments": {},
    }
    with locked(root / LOCK_NAME):
        if exists(root):
            raise WorkspaceError(f"{root}: a workspace already exists here")
        save(root, data)
    with _CACHE_LOCK:
        _MASTER_CACHE[_cache_key(root, data)] = master
        _PROVEN[_cache_key(root, data)] = _proof(master, passphrase)
    return master


def unlock(root: Path, data: dict[str, Any], passphrase: str | None) -> bytes:
    """The master key: from this process's cache, else derived from ``passphrase``."""
    ck = _cache_key(root, data)
    with _CACHE_LOCK:
        cached = _MASTER_CACHE.get(ck)
        proven = _PROVEN.get(ck)
    if cached is not None and passphrase is None:
        return cached
    if cached is not None and passphrase is not None and proven is not None:
        if hmac.compare_digest(proven, _proof(cached, passphrase)):
            return cached
    if passphrase is None:
        raise WorkspaceError(
            f"{root}: the workspace is locked; set WB_PASSPHRASE or pass passphrase= (the CLI prompts)"
        )
    params = crypto.KdfParams(**data["kdf"])
    kek = crypto.derive_kek(passphrase, params)
    try:
        master = crypto.unwrap(kek, data["wrapped_master"], name="master")
    except crypto.DecryptionFailed as exc:
        raise WrongPassphrase(f"{root}: wrong passphrase; nothing was changed") from exc
    if crypto.key_check(master) != data["key_check"]:
        raise WrongPassphrase(f"{root}: key-check value mismatch; nothing was changed")
    with _CACHE_LOCK:
        _MASTER_CACHE[ck] = master
        _PROVEN[ck] = _proof(master, passphrase)
    return master


def _proof(master: bytes, passphrase: str) -> bytes:
    return hmac.new(master, b"passphrase-proof\x00" + passphrase.encode(), hashlib.sha256).digest()


def is_cached(root: Path, data: dict[str, Any]) -> bool:
    """True when this process already holds the master key of ``root``."""
    with _CACHE_LOCK:
        return _cache_key(root, data) in _MASTER_CACHE


def forget_cached_keys() -> None:
    """Drop every cached master key (tests; a 'lock now' button)."""
    with _CACHE_LOCK:
        _MASTER_CACHE.clear()
        _PROVEN.clear()


def rotate_passphrase(root: Path, old: str | None, new: str, *, new_master: bool = False) -> None:
    """Re-wrap the master key under ``new`` with fresh salt, in one atomic keyring write.

    With ``new_master`` a fresh master key replaces the old one and every key it wrapped
    (compartment keys, audit key) is re-wrapped, still in the same single write.
    """
    params = crypto.new_kdf_params()
    kek = crypto.derive_kek(new, params)

    def change(data: dict[str, Any]) -> None:
        master = unlock(root, data, old)
        if new_master:
            fresh = crypto.new_key()
            audit = crypto.unwrap(master, data["audit_key"], name="audit")
            data["audit_key"] = crypto.wrap(fresh, audit, name="audit")
            for name, comp in data["compartments"].items():
                ck = crypto.unwrap(master, comp["key"], name=f"compartment:{name}")
                comp["key"] = crypto.wrap(fresh, ck, name=f"compartment:{name}")
            master = fresh
            data["key_check"] = crypto.key_check(master)
        data["kdf"] = params.to_dict()
        data["wrapped_master"] = crypto.wrap(kek, master, name="master")
        data["rotated"] = time.time()
        with _CACHE_LOCK:
            _MASTER_CACHE[_cache_key(root, data)] = master
            _PROVEN[_cache_key(root, data)] = _proof(master, new)

    update(root, change)
