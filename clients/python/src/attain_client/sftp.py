"""SFTP credentials for `SetSftpSettings`, from the admin's own machine.

The worker logs in to the brand's SFTP server with what the admin sends here: the text of a
private key file (optionally with its passphrase), or a password. The server stores it
encrypted and never returns it; `GetSftpSettings` shows only its kind and the key's
fingerprint. Nothing here names a file or variable of the server's.

    settings.credential.CopyFrom(private_key_credential("~/.ssh/acme_sftp"))
    await attain.targets.SetSftpSettings(tpb.SetSftpSettingsRequest(settings=settings))
"""

from __future__ import annotations

import os
from pathlib import Path

from attain.v1 import targets_pb2 as tpb

# The server refuses longer keys; reading stops past this so a wrong path fails fast.
MAX_PRIVATE_KEY_BYTES = 8 * 1024


def private_key_credential(
    path: str | os.PathLike[str], *, passphrase: str = ""
) -> tpb.SftpCredential:
    """The private key in the file at `path` (OpenSSH or PEM), and its passphrase if it is
    encrypted. Raises OSError when it cannot be read and ValueError when it is no key file."""
    file = Path(path).expanduser()
    with file.open("rb") as f:
        data = f.read(MAX_PRIVATE_KEY_BYTES + 1)
    if len(data) > MAX_PRIVATE_KEY_BYTES:
        raise ValueError(
            f"{file} is larger than a private key file ({MAX_PRIVATE_KEY_BYTES} bytes)"
        )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{file} is not a text private key file (OpenSSH or PEM)") from None
    if "PRIVATE KEY-----" not in text:
        raise ValueError(
            f"{file} holds no private key (-----BEGIN ... PRIVATE KEY-----); "
            "give the key file, not its .pub"
        )
    return tpb.SftpCredential(private_key=text, passphrase=passphrase)


def password_credential(password: str) -> tpb.SftpCredential:
    """A password for the brand's SFTP user."""
    if not password:
        raise ValueError("the password is empty")
    return tpb.SftpCredential(password=password)
