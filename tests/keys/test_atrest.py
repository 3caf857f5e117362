"""Master keys on disk, data-key wrapping, and sealing at rest."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys.atrest import (
    KEY_BYTES,
    FileMasterKeys,
    MasterKeys,
    check_bucket,
    decrypt,
    encrypt,
    new_data_key,
    unwrap,
    wrap,
)
from keys.errors import AtRestInvalid, MasterKeyDestroyed

DATA_KEY = bytes(range(32))
MASTER = bytes(range(100, 132))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def master_keys(tmp_path: Path) -> FileMasterKeys:
    return FileMasterKeys(tmp_path / "home" / "master-keys")


def test_file_master_keys_satisfy_the_protocol(master_keys: FileMasterKeys) -> None:
    keys: MasterKeys = master_keys
    keys.create("zorg-2027-05")
    assert keys.exists("zorg-2027-05")


def test_data_key_round_trips_through_wrap_and_unwrap() -> None:
    data_key = new_data_key()
    wrapped = wrap(MASTER, data_key, bucket="zorg-2027-05")
    assert len(data_key) == KEY_BYTES
    assert len(wrapped) == 12 + 32 + 16
    assert data_key not in wrapped
    assert unwrap(MASTER, wrapped, bucket="zorg-2027-05") == data_key


def test_wrapped_key_is_bound_to_its_bucket() -> None:
    wrapped = wrap(MASTER, DATA_KEY, bucket="zorg-2027-05")
    with pytest.raises(AtRestInvalid) as caught:
        unwrap(MASTER, wrapped, bucket="zorg-2027-06")
    assert caught.value.cause == "unwrap_failed"


def test_wrapped_key_does_not_open_with_another_master_key() -> None:
    wrapped = wrap(MASTER, DATA_KEY, bucket="huur-2027-01")
    with pytest.raises(AtRestInvalid):
        unwrap(bytes(32), wrapped, bucket="huur-2027-01")


def test_sealed_data_round_trips() -> None:
    blob = encrypt(DATA_KEY, b"Dorpsstraat 1", aad=b"notice:1")
    assert blob[0] == 0x01
    assert b"Dorpsstraat" not in blob
    assert decrypt(DATA_KEY, blob, aad=b"notice:1") == b"Dorpsstraat 1"


def test_two_seals_of_the_same_plaintext_differ() -> None:
    assert encrypt(DATA_KEY, b"same", aad=b"") != encrypt(DATA_KEY, b"same", aad=b"")


@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=64))
def test_any_plaintext_and_aad_round_trip(plaintext: bytes, aad: bytes) -> None:
    assert decrypt(DATA_KEY, encrypt(DATA_KEY, plaintext, aad=aad), aad=aad) == plaintext


def test_decrypt_refuses_wrong_aad() -> None:
    blob = encrypt(DATA_KEY, b"contact", aad=b"delivery:jti-1:team-noord")
    with pytest.raises(AtRestInvalid) as caught:
        decrypt(DATA_KEY, blob, aad=b"delivery:jti-1:team-zuid")
    assert caught.value.code == "at_rest_invalid"
    assert caught.value.cause == "decrypt_failed"


def test_decrypt_refuses_a_flipped_bit() -> None:
    blob = bytearray(encrypt(DATA_KEY, b"contact", aad=b""))
    blob[-1] ^= 1
    with pytest.raises(AtRestInvalid, match="does not open"):
        decrypt(DATA_KEY, bytes(blob), aad=b"")


@pytest.mark.parametrize(
    ("blob", "cause"),
    [
        (b"", "malformed"),
        (b"\x01" + bytes(27), "malformed"),
        (b"\x02" + bytes(40), "version_unknown"),
    ],
)
def test_decrypt_refuses_malformed_blobs(blob: bytes, cause: str) -> None:
    with pytest.raises(AtRestInvalid) as caught:
        decrypt(DATA_KEY, blob, aad=b"")
    assert caught.value.cause == cause


def test_keys_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(AtRestInvalid) as caught:
        encrypt(bytes(16), b"x", aad=b"")
    assert caught.value.cause == "key_invalid"


def test_errors_carry_no_key_material() -> None:
    blob = encrypt(DATA_KEY, b"contact", aad=b"a")
    with pytest.raises(AtRestInvalid) as caught:
        decrypt(DATA_KEY, blob, aad=b"b")
    text = caught.value.diagnostics() + repr(caught.value)
    assert DATA_KEY.hex() not in text
    assert repr(DATA_KEY) not in text


def test_create_writes_a_32_byte_key_with_private_modes(master_keys: FileMasterKeys) -> None:
    old_umask = os.umask(0o022)
    try:
        master_keys.create("zorg-2027-05")
    finally:
        os.umask(old_umask)
    path = master_keys.directory / "zorg-2027-05.key"
    assert mode(master_keys.directory) == 0o700
    assert mode(path) == 0o600
    assert len(master_keys.load("zorg-2027-05")) == KEY_BYTES
    assert [p.name for p in master_keys.directory.iterdir()] == ["zorg-2027-05.key"]


def test_create_keeps_an_existing_key(master_keys: FileMasterKeys) -> None:
    master_keys.create("zorg-2027-05")
    first = master_keys.load("zorg-2027-05")
    master_keys.create("zorg-2027-05")
    assert master_keys.load("zorg-2027-05") == first


def test_each_bucket_has_its_own_key(master_keys: FileMasterKeys) -> None:
    master_keys.create("zorg-2027-05")
    master_keys.create("zorg-2027-06")
    assert master_keys.load("zorg-2027-05") != master_keys.load("zorg-2027-06")


def test_destroyed_master_key_cannot_be_loaded(master_keys: FileMasterKeys) -> None:
    master_keys.create("energie-2026-12")
    master_keys.destroy("energie-2026-12")
    assert not master_keys.exists("energie-2026-12")
    assert not (master_keys.directory / "energie-2026-12.key").exists()
    with pytest.raises(MasterKeyDestroyed) as caught:
        master_keys.load("energie-2026-12")
    assert caught.value.code == "master_key_destroyed"


def test_destroy_is_idempotent(master_keys: FileMasterKeys) -> None:
    master_keys.create("energie-2026-12")
    master_keys.destroy("energie-2026-12")
    master_keys.destroy("energie-2026-12")
    master_keys.destroy("never-created")


def test_never_created_key_reads_as_destroyed(master_keys: FileMasterKeys) -> None:
    with pytest.raises(MasterKeyDestroyed):
        master_keys.load("zorg-2030-01")


def test_truncated_key_file_is_refused(master_keys: FileMasterKeys) -> None:
    master_keys.create("zorg-2027-05")
    (master_keys.directory / "zorg-2027-05.key").write_bytes(b"short")
    with pytest.raises(AtRestInvalid) as caught:
        master_keys.load("zorg-2027-05")
    assert caught.value.cause == "key_invalid"


def test_symlinked_key_file_is_refused(master_keys: FileMasterKeys, tmp_path: Path) -> None:
    master_keys.create("zorg-2027-05")
    elsewhere = tmp_path / "elsewhere.key"
    elsewhere.write_bytes(bytes(32))
    os.symlink(elsewhere, master_keys.directory / "zorg-2027-06.key")
    with pytest.raises(OSError):
        master_keys.load("zorg-2027-06")


BAD_BUCKETS = [
    "",
    ".",
    "..",
    ".hidden",
    "../zorg-2027-05",
    "zorg/2027",
    "/etc/passwd",
    "zorg\\2027",
    "zorg 2027",
    "zorg-2027-05\n",
    "zörg-2027-05",
    "zorg\x00",
    "x" * 65,
]


@pytest.mark.parametrize("bucket", BAD_BUCKETS)
def test_bad_bucket_names_are_refused(master_keys: FileMasterKeys, bucket: str) -> None:
    for operation in (
        master_keys.create,
        master_keys.load,
        master_keys.destroy,
        master_keys.exists,
    ):
        with pytest.raises(AtRestInvalid) as caught:
            operation(bucket)
        assert caught.value.cause == "bucket_invalid"
    with pytest.raises(AtRestInvalid):
        wrap(MASTER, DATA_KEY, bucket=bucket)
    assert not master_keys.directory.exists() or not any(master_keys.directory.iterdir())


@pytest.mark.parametrize("bucket", ["zorg-2027-05", "a", "x" * 64, "A_b.c-1"])
def test_good_bucket_names_are_accepted(bucket: str) -> None:
    assert check_bucket(bucket) == bucket
