"""Secrets at rest: AES-256-GCM under the operator's keys, each ciphertext bound to its brand.

The only module that touches ``cryptography``. A sealed value is ``0x01 | nonce (12 bytes) |
ciphertext | tag (16 bytes)``; its associated data is the purpose and the brand code, so a
value copied into another brand's row (or used for another purpose) does not open: the tag
check fails exactly as it does for a wrong key or a flipped bit.

Keys come from the operator (decision 0018): ``ATTAIN_SECRETS_KEY`` (base64 of 32 bytes,
several comma-separated: the first seals, every one opens, so a key can be rotated in) or
``ATTAIN_SECRETS_KEY_FILE`` (the same text in a file). The embedded default, with neither
set, generates one key into ``<data_dir>/secrets.key`` (mode 0600) on first start.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = b"\x01"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
EMBEDDED_KEY_FILE = "secrets.key"


class SealingConfigError(Exception):
    """The operator's key setting is unusable; the message names where, never a key."""


class Unsealable(Exception):
    """No configured key opens this value for this brand and purpose."""


class Sealer:
    """Seals and opens small secrets with the operator's keys (the first one seals)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SealingConfigError("no secrets key given")
        self._ciphers = [AESGCM(key) for key in keys]

    def __repr__(self) -> str:
        return f"Sealer({len(self._ciphers)} keys)"

    def seal(self, plain: bytes, *, brand: str, purpose: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._ciphers[0].encrypt(nonce, plain, _bound(brand, purpose))

    def open(self, sealed: bytes, *, brand: str, purpose: str) -> bytes:
        if len(sealed) < 1 + NONCE_BYTES + TAG_BYTES or sealed[:1] != VERSION:
            raise Unsealable("not a sealed value")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        for cipher in self._ciphers:
            try:
                return cipher.decrypt(nonce, body, _bound(brand, purpose))
            except InvalidTag:
                continue
        raise Unsealable("no configured key opens it for this brand")


def _bound(brand: str, purpose: str) -> bytes:
    # NUL cannot occur in a purpose or a brand code: the pair reads back one way only.
    return f"attain/{purpose}\x00{brand}".encode()


def new_key() -> str:
    """A fresh key in the form the settings take (base64 of 32 random bytes)."""
    return base64.b64encode(AESGCM.generate_key(bit_length=KEY_BYTES * 8)).decode()


def parse_keys(text: str, where: str) -> list[bytes]:
    """The keys in ``text`` (comma- or line-separated base64), first first."""
    keys: list[bytes] = []
    for number, word in enumerate(text.replace("\n", ",").split(","), start=1):
        word = word.strip()
        if not word:
            continue
        try:
            key = base64.b64decode(word, validate=True)
        except (binascii.Error, ValueError):
            raise SealingConfigError(f"{where}: key {number} is not base64") from None
        if len(key) != KEY_BYTES:
            raise SealingConfigError(
                f"{where}: key {number} is {len(key)} bytes; each key is {KEY_BYTES} random "
                "bytes in base64 (e.g. `openssl rand -base64 32`)"
            )
        keys.append(key)
    if not keys:
        raise SealingConfigError(f"{where}: holds no key")
    return keys


def load_sealer(*, keys: str, key_file: Path | None, embedded_dir: Path | None) -> Sealer | None:
    """The operator's sealer: from ``keys``, else ``key_file``, else (embedded default only,
    ``embedded_dir`` given) the generated key file there; None when nothing is configured."""
    if keys and key_file is not None:
        raise SealingConfigError("set ATTAIN_SECRETS_KEY or ATTAIN_SECRETS_KEY_FILE, not both")
    if keys:
        return Sealer(parse_keys(keys, "ATTAIN_SECRETS_KEY"))
    if key_file is not None:
        try:
            text = key_file.read_text()
        except OSError as exc:
            raise SealingConfigError(
                f"ATTAIN_SECRETS_KEY_FILE {key_file}: cannot be read ({exc.strerror})"
            ) from None
        return Sealer(parse_keys(text, f"ATTAIN_SECRETS_KEY_FILE {key_file}"))
    if embedded_dir is not None:
        path = embedded_dir / EMBEDDED_KEY_FILE
        return Sealer(parse_keys(_embedded_key(path), str(path)))
    return None


def _embedded_key(path: Path) -> str:
    """The text of the embedded key file, created (0600) when missing. Written to a private
    temporary file and linked into place, so processes starting together agree on one key
    and none reads a half-written file."""
    if path.exists():
        return path.read_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new_key() + "\n")
        with contextlib.suppress(FileExistsError):  # another process linked its key first
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text()
