"""A party's keyring: rotation with overlap, revocation at once, a private file on disk."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keys.errors import KeyringError
from keys.jwk import PrivateKey
from keys.keyring import DEFAULT_RETIRE_AFTER, Keyring

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_new_keyring_has_one_active_key_per_use() -> None:
    ring = Keyring.generate(now=NOW)
    assert {e.use for e in ring} == {"sig", "enc"}
    assert all(e.state(NOW) == "active" for e in ring)
    assert ring.current("sig", now=NOW).use == "sig"
    assert ring.current("enc", now=NOW).use == "enc"
    assert len(ring.published(now=NOW)) == 2


def test_rotated_key_is_published_before_it_is_current() -> None:
    ring = Keyring.generate(now=NOW)
    old = ring.current("enc", now=NOW)
    new = ring.rotate("enc", now=NOW, overlap=24 * HOUR)
    assert new.state(NOW) == "next"
    assert new.key.public() in ring.published(now=NOW)
    assert ring.current("enc", now=NOW) == old
    assert {k.kid for k in ring.accepted("enc", now=NOW)} == {old.kid, new.kid}


def test_rotated_key_takes_over_after_the_overlap_and_the_old_one_still_opens() -> None:
    ring = Keyring.generate(now=NOW)
    old = ring.current("enc", now=NOW)
    new = ring.rotate("enc", now=NOW, overlap=24 * HOUR)
    later = NOW + 25 * HOUR
    assert ring.current("enc", now=later) == new.key
    assert old.kid in {k.kid for k in ring.accepted("enc", now=later)}
    assert ring.entry(old.kid).retires == new.activates + DEFAULT_RETIRE_AFTER


def test_old_key_retires_after_the_retirement_period() -> None:
    ring = Keyring.generate(now=NOW)
    old = ring.current("enc", now=NOW)
    new = ring.rotate("enc", now=NOW, overlap=HOUR, retire_after=timedelta(days=2))
    gone = new.activates + timedelta(days=2)
    assert ring.entry(old.kid).state(gone) == "retired"
    assert [k.kid for k in ring.accepted("enc", now=gone)] == [new.kid]
    assert old.kid not in {k.kid for k in ring.published(now=gone)}


def test_rotation_touches_only_keys_of_the_same_use() -> None:
    ring = Keyring.generate(now=NOW)
    signing = ring.current("sig", now=NOW)
    ring.rotate("enc", now=NOW)
    assert ring.entry(signing.kid).retires is None


def test_a_second_rotation_does_not_postpone_an_earlier_retirement() -> None:
    ring = Keyring.generate(now=NOW)
    first = ring.current("sig", now=NOW)
    ring.rotate("sig", now=NOW, retire_after=timedelta(days=1))
    retires = ring.entry(first.kid).retires
    ring.rotate("sig", now=NOW + HOUR, retire_after=timedelta(days=30))
    assert ring.entry(first.kid).retires == retires


def test_revoked_key_is_refused_at_once() -> None:
    ring = Keyring.generate(now=NOW)
    key = ring.current("sig", now=NOW)
    ring.revoke(key.kid, now=NOW)
    assert ring.entry(key.kid).state(NOW) == "revoked"
    assert ring.accepted("sig", now=NOW) == []
    assert key.kid not in {k.kid for k in ring.published(now=NOW)}
    with pytest.raises(KeyringError):
        ring.current("sig", now=NOW)


def test_revoking_the_old_key_during_rotation_leaves_the_new_one() -> None:
    ring = Keyring.generate(now=NOW)
    old = ring.current("sig", now=NOW)
    new = ring.rotate("sig", now=NOW)
    ring.revoke(old.kid, now=NOW)
    assert ring.current("sig", now=NOW) == new.key
    assert [k.kid for k in ring.accepted("sig", now=NOW)] == [new.kid]


def test_revoking_an_unknown_key_is_an_error() -> None:
    with pytest.raises(KeyringError):
        Keyring.generate(now=NOW).revoke("no-such-kid", now=NOW)


def test_saved_keyring_loads_back_with_its_lifecycle(tmp_path: Path) -> None:
    ring = Keyring.generate(now=NOW)
    old = ring.current("enc", now=NOW)
    ring.rotate("enc", now=NOW, overlap=HOUR)
    ring.revoke(ring.current("sig", now=NOW).kid, now=NOW + HOUR)
    path = tmp_path / "keys" / "keyring.json"
    ring.save(path)
    loaded = Keyring.from_file(path)
    assert loaded.to_dict() == ring.to_dict()
    assert loaded.current("enc", now=NOW).to_jwk() == old.to_jwk()


def test_saved_keyring_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    Keyring.generate(now=NOW).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    Keyring.generate(now=NOW).save(path)  # overwriting keeps the mode
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]  # no temporary left


def test_repr_of_keys_and_keyring_never_shows_private_material() -> None:
    ring = Keyring.generate(now=NOW)
    secrets = [e.key.to_jwk()["d"] for e in ring]
    shown = " ".join([repr(ring), str(ring), *(repr(e) for e in ring), *(str(e) for e in ring)])
    shown += " ".join(repr(e.key) + str(e.key) for e in ring)
    assert not any(d in shown for d in secrets)
    assert "'d'" not in shown
    assert '"d"' not in shown


def test_missing_keyring_file_is_a_keyring_error(tmp_path: Path) -> None:
    with pytest.raises(KeyringError):
        Keyring.from_file(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"keys": {}}', '{"keys": [{"jwk": {}}]}', '{"keys": [1]}'],
    ids=["not-json", "array", "keys-not-a-list", "entry-malformed", "entry-not-object"],
)
def test_malformed_keyring_file_is_a_keyring_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keyring.json"
    path.write_text(content)
    with pytest.raises(KeyringError):
        Keyring.from_file(path)


def test_keyring_entry_whose_kid_is_not_its_thumbprint_is_refused() -> None:
    doc = Keyring.generate(now=NOW).to_dict()
    doc["keys"][0]["jwk"]["kid"] = "chosen-by-an-attacker"
    with pytest.raises(KeyringError):
        Keyring.from_dict(json.loads(json.dumps(doc)))


def test_private_key_refuses_to_wrap_a_public_key() -> None:
    public = PrivateKey.generate("sig").public()
    with pytest.raises(KeyringError):
        PrivateKey(public.jose, "sig")


def test_no_current_key_before_the_first_one_activates() -> None:
    ring = Keyring.generate(now=NOW)
    with pytest.raises(KeyringError):
        ring.current("sig", now=NOW - HOUR)
