"""SetSftpSettings and GetSftpSettings: credentials that are the brand's own, written once and
never shown, bounded input, and the operator's host allow-list (both databases)."""

from __future__ import annotations

import base64

import asyncssh
import grpc
import pytest
from google.protobuf import descriptor_pb2
from sqlalchemy import text

from attain.v1 import targets_pb2 as tpb
from attain_server.application.sftp_credentials import open_credential
from attain_server.application.sftp_hosts import HostPolicy
from attain_server.application.sftp_settings import get_settings
from conftest import Api, Brand
from support import SEALER, fails, pkcs8_with_iterations, with_rounds

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
SET = "/attain.v1.TargetService/SetSftpSettings"


def valid(**changes: object) -> tpb.SftpSettings:
    msg = tpb.SftpSettings(
        enabled=True,
        host="sftp.acme.example",
        port=22,
        username="attain",
        host_key=HOST_KEY,
        transactions_folder="/in/transactions",
        processed_folder="/done",
        failed_folder="/failed",
        poll_interval_seconds=60,
    )
    for name, value in changes.items():
        if isinstance(value, tpb.SftpCredential):
            msg.credential.CopyFrom(value)
        else:
            setattr(msg, name, value)
    return msg


async def put(api: Api, brand: Brand, msg: tpb.SftpSettings) -> tpb.SftpSettings:
    response = await api.targets.SetSftpSettings(
        tpb.SetSftpSettingsRequest(settings=msg), metadata=brand.admin
    )
    return response.settings


async def row_bytes(api: Api, brand: Brand) -> bytes:
    """Every column of the brand's settings row as the database holds it."""
    async with api.app.db.read() as s:
        conn = await s.connection()
        row = (
            await conn.execute(
                text("SELECT * FROM sftp_settings WHERE brand_code = :b"), {"b": brand.code}
            )
        ).one()
    return b"\x00".join(v if isinstance(v, bytes) else str(v).encode() for v in row)


def encrypted_key(passphrase: str) -> tuple[asyncssh.SSHKey, str]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return key, key.export_private_key("openssh", passphrase=passphrase).decode()


async def test_a_key_is_stored_sealed_and_only_its_fingerprint_is_shown(
    api: Api, brand: Brand
) -> None:
    key, pem = encrypted_key("open sesame")
    saved = await put(
        api,
        brand,
        valid(credential=tpb.SftpCredential(private_key=pem, passphrase="open sesame")),
    )
    got = (
        await api.targets.GetSftpSettings(tpb.GetSftpSettingsRequest(), metadata=brand.admin)
    ).settings
    for shown in (saved, got):
        assert shown.credential_info.kind == tpb.SFTP_CREDENTIAL_KIND_PRIVATE_KEY
        assert shown.credential_info.public_key_fingerprint == key.get_fingerprint("sha256")
        assert not shown.HasField("credential")
        wire = shown.SerializeToString()
        assert b"PRIVATE KEY" not in wire and b"open sesame" not in wire
    row = await row_bytes(api, brand)
    body = "".join(pem.splitlines()[1:-1])
    for secret in (b"PRIVATE KEY", b"open sesame", body[:40].encode(), body[-40:].encode()):
        assert secret not in row
    # What is sealed is the key itself (without its passphrase), for this brand only.
    stored = await get_settings(db=api.app.db, brand=brand.code)
    login = open_credential(SEALER, brand.code, stored.credential)
    assert login.key is not None and login.key.get_fingerprint() == key.get_fingerprint()


async def test_a_password_is_stored_sealed_and_a_new_set_keeps_it(api: Api, brand: Brand) -> None:
    password = "pw-" + base64.b32encode(b"not in the row").decode()
    first = await fails(put(api, brand, valid()))
    assert first.code is grpc.StatusCode.INVALID_ARGUMENT
    assert first.violations == {"settings.credential": "is required: set password or private_key"}
    saved = await put(api, brand, valid(credential=tpb.SftpCredential(password=password)))
    assert saved.credential_info == tpb.SftpCredentialInfo(kind=tpb.SFTP_CREDENTIAL_KIND_PASSWORD)
    sealed = await row_bytes(api, brand)
    assert password.encode() not in sealed
    assert base64.b64encode(password.encode()) not in sealed
    # Without a credential, the stored one is kept while the folders change...
    again = await put(api, brand, valid(processed_folder="/elsewhere"))
    assert again.processed_folder == "/elsewhere"
    assert again.credential_info.kind == tpb.SFTP_CREDENTIAL_KIND_PASSWORD
    stored = await get_settings(db=api.app.db, brand=brand.code)
    assert open_credential(SEALER, brand.code, stored.credential).password == password
    # ...but never goes to another server: a new destination needs the secret again.
    for moved in (valid(port=2222), valid(host="198.51.100.7"), valid(username="other")):
        refused = await fails(put(api, brand, moved))
        assert refused.code is grpc.StatusCode.INVALID_ARGUMENT
        assert set(refused.violations) == {"settings.credential"}
        why = refused.violations["settings.credential"]
        assert "host, port, username or host_key change" in why
    stored = await get_settings(db=api.app.db, brand=brand.code)
    assert (stored.port, stored.processed_folder) == (valid().port, "/elsewhere")


async def test_a_bad_credential_names_its_field_and_echoes_nothing(api: Api, brand: Brand) -> None:
    _, locked = encrypted_key("right")
    plain = asyncssh.generate_private_key("ssh-ed25519")
    slow = with_rounds(plain.export_private_key("openssh", passphrase="x").decode(), 10**6)
    cases = [
        (tpb.SftpCredential(private_key="ssh-ed25519 AAAA"), "settings.credential.private_key"),
        (tpb.SftpCredential(private_key=plain.export_public_key().decode()), "private_key"),
        (tpb.SftpCredential(private_key=locked), "settings.credential.passphrase"),
        (tpb.SftpCredential(private_key=locked, passphrase="wrong"), "passphrase"),
        (tpb.SftpCredential(private_key=slow, passphrase="x"), "private_key"),
        (tpb.SftpCredential(private_key=pkcs8_with_iterations(2**31 - 1), passphrase="x"), "key"),
        (tpb.SftpCredential(private_key=locked + locked, passphrase="right"), "private_key"),
        (tpb.SftpCredential(private_key="A" * 9000), "private_key"),
        (tpb.SftpCredential(password=""), "settings.credential.password"),
        (tpb.SftpCredential(password="a\x00b"), "password"),
        (tpb.SftpCredential(password="p", passphrase="q"), "passphrase"),
        (tpb.SftpCredential(passphrase="only"), "settings.credential"),
    ]
    for credential, field in cases:
        bad = await fails(put(api, brand, valid(credential=credential)))
        assert bad.code is grpc.StatusCode.INVALID_ARGUMENT, (field, bad)
        [name] = bad.violations
        assert name.endswith(field), (field, bad)
        shown = repr(bad)
        assert "PRIVATE KEY" not in shown and "wrong" not in shown and "right" not in shown
    locked_reasons = [
        (await fails(put(api, brand, valid(credential=c)))).violations
        for c in (
            tpb.SftpCredential(private_key=locked),
            tpb.SftpCredential(private_key=locked, passphrase="wrong"),
        )
    ]
    assert locked_reasons == [
        {"settings.credential.passphrase": "is required: the private key is encrypted"},
        {"settings.credential.passphrase": "does not decrypt the private key"},
    ]
    missing = await fails(
        api.targets.GetSftpSettings(tpb.GetSftpSettingsRequest(), metadata=brand.admin)
    )
    assert missing.code is grpc.StatusCode.NOT_FOUND  # nothing was stored


async def test_without_the_operators_key_a_credential_is_a_failed_precondition(
    api: Api, brand: Brand, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.app, "sealer", None)
    refused = await fails(put(api, brand, valid(credential=tpb.SftpCredential(password="pw"))))
    assert (refused.code, refused.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "SECRETS_KEY_MISSING",
    )
    assert "ATTAIN_SECRETS_KEY" in refused.message
    missing = await fails(
        api.targets.GetSftpSettings(tpb.GetSftpSettingsRequest(), metadata=brand.admin)
    )
    assert missing.code is grpc.StatusCode.NOT_FOUND


def _reserved(message: str) -> tuple[list[int], list[str]]:
    file = descriptor_pb2.FileDescriptorProto.FromString(tpb.DESCRIPTOR.serialized_pb)
    [found] = [m for m in file.message_type if m.name == message]
    numbers = [n for r in found.reserved_range for n in range(r.start, r.end)]
    return numbers, list(found.reserved_name)


async def test_nothing_in_the_api_names_a_server_variable_or_file(api: Api, brand: Brand) -> None:
    """The old attack: credential_ref "env:ATTAIN_DATABASE_URL" sent the server's database
    URL to the brand's host. The field is gone; a client that still sends its number is
    ignored; a password that looks like a reference is only a password."""
    fields = tpb.SftpSettings.DESCRIPTOR.fields_by_name
    assert "credential_ref" not in fields and 5 not in tpb.SftpSettings.DESCRIPTOR.fields_by_number
    assert _reserved("SftpSettings") == ([5], ["credential_ref"])
    # Bytes in, bytes out: the message as an old client built it.
    set_raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = api.channel.unary_unary(SET)
    old_field = b"\x2a" + bytes([len(b"env:ATTAIN_DATABASE_URL")]) + b"env:ATTAIN_DATABASE_URL"

    def old_request(settings: tpb.SftpSettings) -> bytes:
        inner = settings.SerializeToString() + old_field  # field 5, length-delimited
        return b"\x0a" + _varint(len(inner)) + inner

    refused = await fails(set_raw(old_request(valid()), metadata=brand.admin))
    assert refused.violations == {"settings.credential": "is required: set password or private_key"}
    await put(api, brand, valid(credential=tpb.SftpCredential(password="env:ATTAIN_DATABASE_URL")))
    before = await get_settings(db=api.app.db, brand=brand.code)
    answer = await set_raw(old_request(valid(poll_interval_seconds=120)), metadata=brand.admin)
    assert b"env:" not in answer and b"ATTAIN_DATABASE_URL" not in answer
    after = await get_settings(db=api.app.db, brand=brand.code)
    assert after.poll_interval_seconds == 120 and after.credential == before.credential
    # Sent as the password it is: never looked up in the server's environment.
    assert (
        open_credential(SEALER, brand.code, after.credential).password == "env:ATTAIN_DATABASE_URL"
    )


def _varint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


async def test_host_user_and_folders_past_their_column_or_with_nul_are_refused(
    api: Api, brand: Brand
) -> None:
    password = tpb.SftpCredential(password="pw")
    cases = {
        "settings.host": ["sftp\x00.example", "a" * 300, "sftp example", "h" * 63 + ".x" * 100],
        "settings.username": ["att\x00ain", "u" * 129],
        "settings.transactions_folder": ["/in\x00/x", "/" + "t" * 2000],
        "settings.targets_folder": ["/in\n/x", "/" + "t" * 1024],
        "settings.processed_folder": ["/done\x7f", "/" + "p" * 1024],
        "settings.failed_folder": ["/x\x00", "/" + "f" * 5000],
        "settings.host_key": [HOST_KEY + " " + "c" * 9000, HOST_KEY + "\x00"],
    }
    for field, values in cases.items():
        for value in values:
            name = field.removeprefix("settings.")
            bad = await fails(put(api, brand, valid(credential=password, **{name: value})))
            assert bad.code is grpc.StatusCode.INVALID_ARGUMENT, (field, bad)
            assert list(bad.violations) == [field], (value[:20], bad)
    missing = await fails(
        api.targets.GetSftpSettings(tpb.GetSftpSettingsRequest(), metadata=brand.admin)
    )
    assert missing.code is grpc.StatusCode.NOT_FOUND
    # The longest values that fit are stored, on both databases.
    longest = valid(
        credential=password,
        host="h" * 63 + "." + "o" * 63 + "." + "s" * 63 + "." + "t" * 61,
        username="u" * 128,
        transactions_folder="/" + "t" * 1023,
        failed_folder="/" + "f" * 1023,
    )
    saved = await put(api, brand, longest)
    assert (len(saved.host), len(saved.transactions_folder)) == (253, 1024)


async def test_the_operators_allow_list_refuses_other_hosts(
    api: Api, brand: Brand, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.app, "sftp_hosts", HostPolicy.parse("*.sftp.example.com, 10.20.0.0/16"))
    password = tpb.SftpCredential(password="pw")
    for host in ("files.sftp.example.com", "10.20.7.1", "EU.SFTP.example.com"):
        assert (await put(api, brand, valid(host=host, credential=password))).host == host
    for host in ("127.0.0.1", "10.21.0.1", "localhost", "::1"):
        bad = await fails(put(api, brand, valid(host=host, credential=password)))
        assert bad.violations == {"settings.host": "is not among the hosts the operator allows"}
    stored = await get_settings(db=api.app.db, brand=brand.code)
    assert stored.host == "EU.SFTP.example.com"  # the refused ones changed nothing
