"""What reading a private key file would cost, told from its header before anything runs.

An encrypted key names its own key-derivation work: bcrypt rounds in an OpenSSH key, an
iteration count in an encrypted PKCS#8 PEM (PBKDF2, or PKCS#5/PKCS#12 loops that asyncssh
runs in Python). A brand's admin writes that number, so it is bounded before the key is
read: a crafted file must not keep one of the server's cores busy for minutes. Traditional
PEM encryption (``Proc-Type: 4,ENCRYPTED``) derives with one round and needs no bound.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterator

MAX_BCRYPT_ROUNDS = 256  # ssh-keygen's default is 16; `-a 100` is common advice
MAX_ITERATIONS = 1_000_000  # OpenSSL writes 2,048; OWASP's PBKDF2 advice is 600,000
_ARMOUR = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )?)PRIVATE KEY-----\s*(.*?)-----END \1PRIVATE KEY-----", re.DOTALL
)
NOT_A_KEY = (
    "must be an OpenSSH or PEM private key: the whole text of the key file "
    "(not its path, and not the .pub)"
)
_OPENSSH_MAGIC = b"openssh-key-v1\x00"
_DER_INTEGER, _DER_CONSTRUCTED = 0x02, 0x20


def derivation_error(text: str) -> str | None:
    """Why reading the key in ``text`` would cost too much, or cannot be judged; None when
    it is cheap. The text must be one armoured key and nothing else, so that the block
    judged here is the block the reader reads."""
    armour = _ARMOUR.fullmatch(text.strip())
    if armour is None:
        return NOT_A_KEY
    label, body = armour.group(1).strip(), armour.group(2)
    if label not in ("OPENSSH", "ENCRYPTED"):
        return None
    try:
        blob = base64.b64decode("".join(body.split()), validate=True)
        if label == "OPENSSH":
            rounds = _bcrypt_rounds(blob)
            if rounds > MAX_BCRYPT_ROUNDS:
                return (
                    f"is encrypted with more than {MAX_BCRYPT_ROUNDS} bcrypt rounds "
                    "(ssh-keygen -a): re-encrypt it with fewer"
                )
        elif max(_der_integers(blob), default=0) > MAX_ITERATIONS:
            return (
                f"is encrypted with more than {MAX_ITERATIONS:,} key-derivation iterations: "
                "re-encrypt it with fewer"
            )
    except (binascii.Error, ValueError, struct.error, IndexError):
        return NOT_A_KEY
    return None


def _bcrypt_rounds(blob: bytes) -> int:
    """The rounds an OpenSSH key's bcrypt KDF asks for; 0 when it is not encrypted
    (OpenSSH's PROTOCOL.key: magic, then cipher name, KDF name and KDF options as strings)."""
    if not blob.startswith(_OPENSSH_MAGIC):
        raise ValueError("not an OpenSSH key")
    at, fields = len(_OPENSSH_MAGIC), []
    for _ in range(3):
        (size,) = struct.unpack_from(">I", blob, at)
        fields.append(blob[at + 4 : at + 4 + size])
        at += 4 + size
    _cipher, kdf, options = fields
    if kdf != b"bcrypt":
        return 0
    (salt_size,) = struct.unpack_from(">I", options, 0)
    return int(struct.unpack_from(">I", options, 4 + salt_size)[0])


def _der_integers(data: bytes, depth: int = 0) -> Iterator[int]:
    """Every INTEGER in DER ``data``. In an EncryptedPrivateKeyInfo they are all parameters
    of the encryption algorithm (iteration counts, key lengths, scrypt costs), the encrypted
    key being one OCTET STRING."""
    at = 0
    while at < len(data):
        tag = data[at]
        size, at = _der_length(data, at + 1)
        value = data[at : at + size]
        if len(value) != size:
            raise ValueError("truncated DER")
        at += size
        if tag == _DER_INTEGER:
            yield int.from_bytes(value, "big", signed=True)
        elif tag & _DER_CONSTRUCTED:
            if depth > 8:
                raise ValueError("DER nested too deep")
            yield from _der_integers(value, depth + 1)


def _der_length(data: bytes, at: int) -> tuple[int, int]:
    first = data[at]
    if first < 0x80:
        return first, at + 1
    count = first & 0x7F
    if not 0 < count <= 4:
        raise ValueError("unsupported DER length")
    return int.from_bytes(data[at + 1 : at + 1 + count], "big"), at + 1 + count
