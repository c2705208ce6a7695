"""`attain sftp`: where the worker pulls the brand's files from, and how it logs in.

The credential comes from the admin's own machine: a private key file (`--private-key-file`)
or a password read from standard input (`--password-stdin`), never an argument value (which
shell history and process listings keep). The server stores it encrypted and never shows it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import grpc
import typer

from attain.v1 import targets_pb2 as tpb
from attain_cli.files import read_text
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, table
from attain_cli.runner import InputError, bad_input, run
from attain_client import AttainClient, AttainError, password_credential, private_key_credential

app = typer.Typer(help="SFTP pull settings: set, show.", no_args_is_help=True)

KEY_TYPES = ("ssh-", "ecdsa-", "sk-")


@app.command("set")
def set_settings(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="SFTP server host name")] = "",
    port: Annotated[int, typer.Option(help="SFTP server port")] = 22,
    user: Annotated[str, typer.Option(help="user name on the SFTP server")] = "",
    private_key_file: Annotated[
        Path | None,
        typer.Option(help="the worker logs in with this private key (OpenSSH or PEM file)"),
    ] = None,
    passphrase_stdin: Annotated[
        bool, typer.Option(help="read the private key's passphrase from standard input")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option(help="the worker logs in with a password read from standard input")
    ] = False,
    host_key: Annotated[
        str, typer.Option(help="the server's public host key, 'ssh-ed25519 AAAA...'")
    ] = "",
    host_key_file: Annotated[
        Path | None, typer.Option(help="read the host key from a .pub or known_hosts file")
    ] = None,
    targets_folder: Annotated[str, typer.Option(help="remote folder of target files")] = "",
    transactions_folder: Annotated[
        str, typer.Option(help="remote folder of transaction files")
    ] = "",
    processed: Annotated[str, typer.Option(help="remote folder for imported files")] = "",
    failed: Annotated[str, typer.Option(help="remote folder for files that failed")] = "",
    interval: Annotated[int, typer.Option(help="seconds between polls (>= 10)")] = 60,
    enabled: Annotated[bool, typer.Option("--enabled/--disabled", help="poll or not")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Set (replace) the brand's SFTP settings. Without --private-key-file or
    --password-stdin the stored credential is kept."""
    if host_key and host_key_file:
        raise bad_input("host_key", "give --host-key or --host-key-file, not both")
    credential = _credential(private_key_file, passphrase_stdin, password_stdin)

    async def work(client: AttainClient) -> tpb.SftpSettings:
        key = _key_from_file(host_key_file) if host_key_file else host_key.strip()
        settings = tpb.SftpSettings(
            enabled=enabled,
            host=host,
            port=port,
            username=user,
            host_key=key,
            targets_folder=targets_folder,
            transactions_folder=transactions_folder,
            processed_folder=processed,
            failed_folder=failed,
            poll_interval_seconds=interval,
        )
        if credential is not None:
            settings.credential.CopyFrom(credential)
        request = tpb.SetSftpSettingsRequest(settings=settings)
        return (await client.targets.SetSftpSettings(request)).settings

    settings = run(ctx, work)
    if as_json:
        emit_json(settings)
        return
    console().print(f"Saved the SFTP settings for {settings.username}@{settings.host}.")


def _credential(
    key_file: Path | None, passphrase_stdin: bool, password_stdin: bool
) -> tpb.SftpCredential | None:
    """The credential the flags name, or None to keep the stored one."""
    if key_file is not None and password_stdin:
        raise bad_input("credential", "give --private-key-file or --password-stdin, not both")
    if passphrase_stdin and key_file is None:
        raise bad_input("passphrase", "--passphrase-stdin goes with --private-key-file")
    try:
        if key_file is not None:
            passphrase = _stdin_line("passphrase") if passphrase_stdin else ""
            return private_key_credential(key_file, passphrase=passphrase)
        if password_stdin:
            return password_credential(_stdin_line("password"))
    except OSError as exc:
        raise bad_input(str(key_file), exc.strerror or "cannot be read") from None
    except ValueError as exc:
        raise bad_input("credential", str(exc)) from None
    return None


def _stdin_line(what: str) -> str:
    """The first line of standard input without its line break (`printf %s "$PW" | ...`
    and `... < file` both work; a terminal is asked without echo)."""
    if sys.stdin.isatty():
        return str(typer.prompt(what.capitalize(), hide_input=True))
    line = sys.stdin.readline()
    if not line:
        raise bad_input(what, "standard input is empty")
    return line.removesuffix("\n").removesuffix("\r")


def _key_from_file(path: Path) -> str:
    """The first public key in a .pub file ("ssh-ed25519 AAAA... comment") or a known_hosts
    line ("host ssh-ed25519 AAAA..."): its type and base64 body."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        for i, word in enumerate(words[:-1]):
            if word.startswith(KEY_TYPES):
                return f"{word} {words[i + 1]}"
        raise InputError(f"{path}, line {number}", "no public key such as 'ssh-ed25519 AAAA...'")
    raise InputError(str(path), "has no public key")


@app.command("show")
def show_settings(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the SFTP settings (of the credential, only its kind and key fingerprint)."""

    async def work(client: AttainClient) -> tpb.SftpSettings | None:
        try:
            return (await client.targets.GetSftpSettings(tpb.GetSftpSettingsRequest())).settings
        except AttainError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    settings = run(ctx, work)
    if settings is None:
        if as_json:
            emit_json(None)
            return
        console().print("No SFTP settings yet; set them with `attain sftp set`.", markup=False)
        return
    if as_json:
        emit_json(settings)
        return
    rows = [
        ("enabled", "yes" if settings.enabled else "no"),
        ("server", f"{settings.username}@{settings.host}:{settings.port}"),
        ("credential", _credential_shown(settings.credential_info)),
        ("host key", settings.host_key),
        ("target files", settings.targets_folder or "-"),
        ("transaction files", settings.transactions_folder or "-"),
        ("processed", settings.processed_folder),
        ("failed", settings.failed_folder),
        ("poll every", f"{settings.poll_interval_seconds} s"),
    ]
    table("SFTP settings", ["setting", "value"], rows)


def _credential_shown(info: tpb.SftpCredentialInfo) -> str:
    if info.kind == tpb.SFTP_CREDENTIAL_KIND_PRIVATE_KEY:
        return f"private key {info.public_key_fingerprint}"
    if info.kind == tpb.SFTP_CREDENTIAL_KIND_PASSWORD:
        return "password"
    return "none: set one with --private-key-file or --password-stdin"


def register(root: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    root.add_typer(app, name="sftp")
