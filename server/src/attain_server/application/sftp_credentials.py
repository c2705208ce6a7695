"""The credential the worker logs in with: checked when the brand admin writes it, sealed
with the operator's key for this brand (sealing.py), opened only for a connection.

A private key is kept re-exported without its passphrase: the seal protects it, the
passphrase is never stored, and the worker needs nothing but the operator's key. Reading a
key checks it (seconds for the largest RSA keys), so its size and its key-derivation work
(key_files.py) are bounded, and it is read off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncssh

from attain_server.domain.errors import FailedPrecondition, Violations
from attain_server.domain.validation import text_error

from .key_files import NOT_A_KEY, derivation_error
from .sealing import Sealer, Unsealable

PASSWORD = "PASSWORD"
PRIVATE_KEY = "PRIVATE_KEY"
MAX_PASSWORD = 1024
MAX_PRIVATE_KEY = 8 * 1024  # an RSA key of 8,192 bits is about 6.5 KiB of text
# asyncssh's message for an encrypted key read without a passphrase (it has no own class).
_NEEDS_PASSPHRASE = "Passphrase must be specified"


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """What is stored of the credential: its kind, a key's fingerprint, the sealed secret."""

    kind: str  # PASSWORD or PRIVATE_KEY
    fingerprint: str  # "SHA256:..." of a private key's public half; "" for a password
    sealed: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class NewCredential:
    """A credential as the admin writes it; exactly one of password and private_key."""

    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class Login:
    """An opened credential, for the connection only: never stored, logged or returned."""

    key: asyncssh.SSHKey | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


class CredentialUnavailable(Exception):
    """The stored credential cannot be used; ``reason`` is UPPER_SNAKE, the message is safe."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _purpose(kind: str) -> str:
    # The kind is sealed in too: a key's row relabelled PASSWORD does not open.
    return f"sftp-credential/{kind}"


def read_credential(
    v: Violations, new: NewCredential, prefix: str = "credential"
) -> tuple[str, str, bytes] | None:
    """(kind, fingerprint, secret to seal) of a new credential, or None with violations named
    under ``prefix``, the credential's field within the settings."""
    if new.password is not None and new.private_key is not None:
        v.add(prefix, "set password or private_key, not both")
    elif new.password is not None:
        if new.passphrase:
            v.add(f"{prefix}.passphrase", "is only used with private_key")
        elif error := text_error(new.password, MAX_PASSWORD) or (
            "must not be empty" if not new.password else None
        ):
            v.add(f"{prefix}.password", error)
        else:
            return PASSWORD, "", new.password.encode()
    elif new.private_key is not None:
        return _read_private_key(v, new.private_key, new.passphrase, prefix)
    else:
        v.add(prefix, "set password or private_key")
    return None


def _read_private_key(
    v: Violations, text: str, passphrase: str, prefix: str
) -> tuple[str, str, bytes] | None:
    """The key is kept re-exported without its passphrase: the seal protects it, and the
    passphrase is not stored at all."""
    if len(text) > MAX_PRIVATE_KEY:
        v.add(f"{prefix}.private_key", f"must be at most {MAX_PRIVATE_KEY} characters")
        return None
    if error := derivation_error(text):
        v.add(f"{prefix}.private_key", error)
        return None
    try:
        key = asyncssh.import_private_key(text, passphrase or None)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError, TypeError):
        if not _encrypted(text):
            v.add(f"{prefix}.private_key", NOT_A_KEY)
        elif passphrase:
            v.add(f"{prefix}.passphrase", "does not decrypt the private key")
        else:
            v.add(f"{prefix}.passphrase", "is required: the private key is encrypted")
        return None
    return PRIVATE_KEY, key.get_fingerprint("sha256"), key.export_private_key("openssh")


def _encrypted(text: str) -> bool:
    """Whether ``text`` is a private key that asyncssh reads only with a passphrase."""
    try:
        asyncssh.import_private_key(text)
    except asyncssh.KeyImportError as exc:
        return str(exc).startswith(_NEEDS_PASSPHRASE)
    except (asyncssh.KeyEncryptionError, ValueError, TypeError):
        return False
    return False


def open_credential(sealer: Sealer | None, brand: str, stored: StoredCredential | None) -> Login:
    """The brand's stored credential, opened for one connection."""
    if stored is None:
        raise CredentialUnavailable("CREDENTIAL_MISSING", "no credential is set")
    if sealer is None:
        raise CredentialUnavailable(
            "SECRETS_KEY_MISSING",
            "no secrets key is configured (ATTAIN_SECRETS_KEY or ATTAIN_SECRETS_KEY_FILE)",
        )
    try:
        secret = sealer.open(stored.sealed, brand=brand, purpose=_purpose(stored.kind))
        if stored.kind == PRIVATE_KEY:
            # Checked when it was set, and the seal proves these are the same bytes.
            return Login(
                key=asyncssh.import_private_key(secret, unsafe_skip_rsa_key_validation=True)
            )
        if stored.kind == PASSWORD:
            return Login(password=secret.decode())
    except (Unsealable, asyncssh.KeyImportError, UnicodeDecodeError, ValueError):
        pass
    raise CredentialUnavailable(
        "CREDENTIAL_INVALID",
        "the stored credential does not open with the configured keys for this brand: set it again",
    )


def seal_credential(
    sealer: Sealer | None, brand: str, kind: str, fingerprint: str, secret: bytes
) -> StoredCredential:
    if sealer is None:
        raise FailedPrecondition(
            "the operator has not configured a secrets key (ATTAIN_SECRETS_KEY or "
            "ATTAIN_SECRETS_KEY_FILE): no SFTP credential can be stored",
            reason="SECRETS_KEY_MISSING",
        )
    return StoredCredential(
        kind, fingerprint, sealer.seal(secret, brand=brand, purpose=_purpose(kind))
    )
