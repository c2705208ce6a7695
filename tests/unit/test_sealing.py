"""Sealed secrets (AES-GCM bound to brand and purpose, key rotation), the host allow-list,
and the bounded work of reading a brand's key file."""

from __future__ import annotations

import asyncssh
import pytest

from attain_server.application.key_files import MAX_ITERATIONS, NOT_A_KEY, derivation_error
from attain_server.application.sealing import (
    Sealer,
    SealingConfigError,
    Unsealable,
    new_key,
    parse_keys,
)
from attain_server.application.sftp_hosts import HostPolicy
from support import pkcs8_with_iterations, with_rounds


def sealer(*keys: str) -> Sealer:
    return Sealer(parse_keys(",".join(keys), "test"))


def test_a_sealed_value_opens_only_for_its_brand_and_purpose() -> None:
    box = sealer(new_key())
    sealed = box.seal(b"s3cret", brand="ACME", purpose="sftp-credential/PASSWORD")
    assert b"s3cret" not in sealed
    assert box.open(sealed, brand="ACME", purpose="sftp-credential/PASSWORD") == b"s3cret"
    assert sealed != box.seal(b"s3cret", brand="ACME", purpose="sftp-credential/PASSWORD")
    for brand, purpose in (("ACME2", "sftp-credential/PASSWORD"), ("ACME", "other")):
        with pytest.raises(Unsealable):
            box.open(sealed, brand=brand, purpose=purpose)
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    for broken in (bytes(flipped), sealed[:10], b"", b"\x02" + sealed[1:]):
        with pytest.raises(Unsealable):
            box.open(broken, brand="ACME", purpose="sftp-credential/PASSWORD")


def test_keys_rotate_the_first_seals_and_every_one_opens() -> None:
    old, new = new_key(), new_key()
    sealed_by_old = sealer(old).seal(b"x", brand="B", purpose="p")
    rotated = sealer(new, old)
    assert rotated.open(sealed_by_old, brand="B", purpose="p") == b"x"
    sealed_by_new = rotated.seal(b"y", brand="B", purpose="p")
    assert sealer(new).open(sealed_by_new, brand="B", purpose="p") == b"y"
    with pytest.raises(Unsealable):
        sealer(old).open(sealed_by_new, brand="B", purpose="p")
    with pytest.raises(Unsealable):  # a key the operator removed opens nothing
        sealer(new).open(sealed_by_old, brand="B", purpose="p")


def test_unusable_keys_are_named_and_never_shown() -> None:
    short = "c2hvcnQ="  # base64 of b"short"
    for text, said in ((f"{new_key()},{short}", "key 2 is 5 bytes"), ("not base64!", "key 1")):
        with pytest.raises(SealingConfigError) as error:
            parse_keys(text, "ATTAIN_SECRETS_KEY")
        assert said in str(error.value) and "ATTAIN_SECRETS_KEY" in str(error.value)
        assert short not in str(error.value) and "base64!" not in str(error.value)
    with pytest.raises(SealingConfigError):
        parse_keys(" , ", "ATTAIN_SECRETS_KEY")
    assert len(parse_keys(f"{new_key()}\n{new_key()}\n", "file")) == 2


def test_the_allow_list_takes_globs_and_networks() -> None:
    policy = HostPolicy.parse("*.sftp.example.com, 10.20.0.0/16, 127.0.0.1, 2001:db8::/32")
    assert policy.name_allowed("eu.SFTP.example.com.")
    assert not policy.name_allowed("sftp.example.com")
    assert not policy.name_allowed("sftp.example.com.evil.test")
    assert not policy.name_allowed("10.20.0.1")  # an address is judged as an address
    for address in ("10.20.255.1", "127.0.0.1", "::ffff:10.20.0.9", "2001:db8::1"):
        assert policy.address_allowed(address), address
    for address in ("10.21.0.1", "127.0.0.2", "::1", "not an address"):
        assert not policy.address_allowed(address), address
    assert HostPolicy.parse(" ").open and not policy.open
    for bad in ("10.20.0.1/16", "10.0.0.0/33", "sftp example", "[ab].example"):
        with pytest.raises(ValueError, match="ATTAIN_SFTP_ALLOWED_HOSTS"):
            HostPolicy.parse(bad)


def test_a_key_files_derivation_work_is_judged_from_its_header() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    cheap = key.export_private_key("openssh", passphrase="p").decode()  # 16 rounds
    for fine in (
        cheap,
        key.export_private_key("openssh").decode(),
        key.export_private_key("pkcs8-pem", passphrase="p").decode(),
        asyncssh.generate_private_key("ssh-rsa", key_size=1024)
        .export_private_key("pkcs1-pem")
        .decode(),
    ):
        assert derivation_error(fine) is None
    assert "bcrypt rounds" in str(derivation_error(with_rounds(cheap, 10**6)))
    assert "iterations" in str(derivation_error(pkcs8_with_iterations(2**31 - 1)))
    assert derivation_error(pkcs8_with_iterations(MAX_ITERATIONS)) is None
    for junk in ("", "ssh-ed25519 AAAA", cheap + cheap, "x" + cheap.replace("\n", "\n!", 3)):
        assert derivation_error(junk) == NOT_A_KEY
