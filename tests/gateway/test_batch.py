"""Batch files: every line judged, one receipt, nothing processed twice, resumable."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters import profile
from adapters.creditor import Creditor, read_export
from gateway import batch, dropbox
from gateway.batch import Folders, folders_for, process_file, process_waiting
from gateway.clock import FixedClock
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.store.auditlog import AuditLog
from gateway.store.schema import batch_files, notices
from keys.home import PartyHome
from keys.receipt import verify_receipt
from signaalpoort import LocalTransport, _party, init_demo

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ZORG = _party("zorg").oin


@pytest.fixture
def demo(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not store_url.startswith("sqlite"):
        monkeypatch.setenv("SIGNAALPOORT_DATABASE_URL", store_url)
    init_demo(tmp_path / "demo", now=NOW)
    return tmp_path / "demo"


@pytest.fixture
def gw(demo: Path) -> Iterator[Gateway]:
    gateway = Gateway.open(Settings.load(demo / "gateway"), clock=FixedClock(NOW))
    yield gateway
    gateway.close()


class Drop:
    """The zorg creditor's inbox and the folders the gateway writes to."""

    def __init__(self, demo: Path, gw: Gateway, tmp_path: Path, now: datetime = NOW) -> None:
        self.now = now
        self.creditor = Creditor(PartyHome(demo / "zorg"), now=now)
        self.transport = LocalTransport(gw, self.creditor.identity.oin)
        self.rows = read_export(demo / "zorg" / "notices.csv")
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir()
        self.folders = Folders(tmp_path / "receipts", tmp_path / "done", tmp_path / "quarantine")

    def envelopes(self, count: int, tag: str = "B") -> list[str]:
        rows = [
            profile.Row(
                i,
                {**self.rows[i % len(self.rows)].values, "ref": f"{tag}-{i}"},
                self.rows[i % len(self.rows)].attestations,
            )
            for i in range(count)
        ]
        return [s.envelope for s in self.creditor.seal_rows(rows, self.transport, now=self.now)]

    def upload(self, name: str, lines: list[str | bytes]) -> Path:
        path = self.inbox / name
        path.write_bytes(
            b"".join(
                (line if isinstance(line, bytes) else json.dumps({"envelope": line}).encode())
                + b"\n"
                for line in lines
            )
        )
        return path

    def receipt(self, result: batch.BatchResult) -> dict[str, Any]:
        return verify_receipt(result.receipt.read_text().strip(), keys=self.creditor.gateway_keys)


@pytest.fixture
def drop(demo: Path, gw: Gateway, tmp_path: Path) -> Drop:
    return Drop(demo, gw, tmp_path)


def stored(gw: Gateway) -> int:
    with gw.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(notices)).scalar_one())


def outcomes(receipt: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(i["outcome"], i["reason"]) for i in receipt["items"]]


def test_every_line_is_judged_on_its_own_and_listed_in_one_receipt(gw: Gateway, drop: Drop) -> None:
    good = drop.envelopes(3)
    too_long = json.dumps({"envelope": "x" * 70_000}).encode()
    path = drop.upload(
        "2026-11.jsonl",
        [
            good[0],
            b'{"envelope": ',  # broken JSON
            good[1],
            json.dumps({"envelope": good[2], "extra": 1}).encode(),
            b"",  # an empty line
            good[2],
            good[0],  # the same envelope again in one file
            too_long,  # over the envelope limit
        ],
    )
    result = process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    receipt = drop.receipt(result)
    assert (receipt["intake"], receipt["source"], receipt["aud"]) == ("sftp", path.name, ZORG)
    invalid = ("refused", "envelope_invalid")
    assert outcomes(receipt) == [
        ("accepted", None), invalid, ("accepted", None), invalid, invalid,
        ("accepted", None), ("duplicate", None), invalid,
    ]  # fmt: skip
    assert [i["position"] for i in receipt["items"]] == list(range(8))
    assert receipt["items"][1]["envelopeSha256"] == hashlib.sha256(b'{"envelope": ').hexdigest()
    assert receipt["items"][7]["envelopeSha256"] == hashlib.sha256(too_long).hexdigest()
    assert receipt["items"][0]["envelopeSha256"] == hashlib.sha256(good[0].encode()).hexdigest()
    assert stored(gw) == 3
    assert result.status == "done" and result.counts == {
        "accepted": 3,
        "refused": 4,
        "duplicate": 1,
    }
    assert not path.exists() and result.moved_to.parent == drop.folders.done


def test_uploading_the_same_file_again_gives_only_duplicates(gw: Gateway, drop: Drop) -> None:
    envelopes = drop.envelopes(4)
    first = process_file(
        gw, sender=ZORG, path=drop.upload("a.jsonl", envelopes), folders=drop.folders
    )
    assert outcomes(drop.receipt(first)) == [("accepted", None)] * 4
    again = process_file(
        gw, sender=ZORG, path=drop.upload("a.jsonl", envelopes), folders=drop.folders
    )
    # The new receipt takes the old one's place under the file's name.
    assert outcomes(drop.receipt(again)) == [("duplicate", None)] * 4
    assert again.file_id != first.file_id and stored(gw) == 4


class FailingAfter(AuditLog):
    """An audit log whose store fails from the n-th append on, as a crash would."""

    def __init__(self, appends: int) -> None:
        super().__init__()
        self.left = appends

    def append(self, conn: Any, events: Any) -> list[int]:
        if self.left == 0:
            raise RuntimeError("the gateway went down")
        self.left -= 1
        return super().append(conn, events)


def test_a_restart_mid_file_resumes_after_the_last_chunk_committed(
    gw: Gateway, drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "CHUNK_LINES", 2)
    path = drop.upload("b.jsonl", drop.envelopes(5))
    working = gw.audit
    gw.audit = FailingAfter(2)  # batch.received, the first chunk; then down
    with pytest.raises(RuntimeError):
        process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    assert stored(gw) == 2 and path.exists()
    gw.audit = working
    result = process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    # Lines stored before the crash keep their outcome: accepted, not duplicate.
    assert outcomes(drop.receipt(result)) == [("accepted", None)] * 5
    assert stored(gw) == 5
    with gw.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(batch_files)).scalar_one() == 1
        assert gw.audit.verify(conn, verify_signature=lambda *_: True) > 0


def test_a_crash_after_the_receipt_was_signed_writes_the_same_receipt(
    gw: Gateway, drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = drop.upload("c.jsonl", drop.envelopes(2))
    real = os.replace
    calls = {"n": 0}

    def crash_on_move(src: Any, dst: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the receipt was written; the upload's move fails
            raise OSError("power failure")
        real(src, dst)

    monkeypatch.setattr(batch.os, "replace", crash_on_move)
    with pytest.raises(OSError):
        process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    written = (drop.folders.receipts / "c.jsonl.receipt.jws").read_text()
    result = process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    assert result.receipt.read_text() == written
    assert outcomes(drop.receipt(result)) == [("accepted", None)] * 2
    assert not path.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x00\x01binary\xff\xfe garbage", "file_unreadable"),
        (b'{"envelope": "\xe9t\xe9"}\n', "file_unreadable"),
    ],
    ids=["binary", "not-utf8"],
)
def test_a_file_that_cannot_be_read_goes_to_quarantine_with_a_receipt_saying_why(
    gw: Gateway, drop: Drop, content: bytes, reason: str
) -> None:
    path = drop.inbox / "bad.jsonl"
    path.write_bytes(content)
    result = process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    receipt = drop.receipt(result)
    assert (receipt["refused"], receipt["items"]) == (reason, [])
    assert result.status == "quarantined"
    assert result.moved_to.parent == drop.folders.quarantine
    assert result.moved_to.read_bytes() == content


def test_a_file_over_the_line_limit_is_refused_as_a_whole(
    gw: Gateway, drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "MAX_FILE_LINES", 3)
    path = drop.upload("big.jsonl", [b"{}"] * 4)
    result = process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    assert drop.receipt(result)["refused"] == "file_too_large"
    assert stored(gw) == 0


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"], ids=["empty", "bom-only"])
def test_an_empty_file_gets_a_receipt_without_items(
    gw: Gateway, drop: Drop, content: bytes
) -> None:
    path = drop.inbox / "empty.jsonl"
    path.write_bytes(content)
    result = process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    receipt = drop.receipt(result)
    assert receipt["items"] == [] and "refused" not in receipt
    assert result.status == "done"


def test_a_byte_order_mark_and_crlf_line_ends_are_read(gw: Gateway, drop: Drop) -> None:
    good = drop.envelopes(2)
    path = drop.inbox / "windows.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + b"".join(json.dumps({"envelope": e}).encode() + b"\r\n" for e in good)
    )
    result = process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    assert outcomes(drop.receipt(result)) == [("accepted", None)] * 2


def test_every_waiting_upload_of_every_creditor_is_processed_and_links_never_read(
    gw: Gateway, drop: Drop, tmp_path: Path
) -> None:
    home = gw.settings.home
    dropbox.ensure_dropbox(home, ZORG)
    inbox = dropbox.inbox_dir(home, ZORG)
    secret = tmp_path / "elsewhere.jsonl"
    secret.write_text("not for the gateway\n")
    (inbox / "link.jsonl").symlink_to(secret)
    (inbox / ".upload.jsonl.part").write_text("{}\n")
    ready = inbox / "ready.jsonl"
    ready.write_text(json.dumps({"envelope": drop.envelopes(1)[0]}) + "\n")
    [result] = process_waiting(gw)
    assert result.receipt == dropbox.receipt_path(home, ZORG, "ready.jsonl")
    assert outcomes(drop.receipt(result)) == [("accepted", None)]
    assert result.moved_to.parent == folders_for(home, ZORG).done
    assert not result.moved_to.is_relative_to(dropbox.creditor_root(home, ZORG))
    # The link and the upload in progress are left alone.
    assert sorted(p.name for p in inbox.iterdir()) == [".upload.jsonl.part", "link.jsonl"]
    with pytest.raises(OSError):
        process_file(gw, sender=ZORG, path=inbox / "link.jsonl", folders=drop.folders)


@pytest.fixture
def live(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Gateway, Drop]]:
    """A gateway and drop for worker processes, in chunks of two lines. The workers run
    on the system clock, so the demo and its notices are made now."""
    if not store_url.startswith("sqlite"):
        monkeypatch.setenv("SIGNAALPOORT_DATABASE_URL", store_url)
    now = datetime.now(UTC) - timedelta(minutes=1)
    init_demo(tmp_path / "demo", now=now)
    gateway = Gateway.open(Settings.load(tmp_path / "demo" / "gateway"))
    monkeypatch.setattr(batch, "CHUNK_LINES", 2)
    yield gateway, Drop(tmp_path / "demo", gateway, tmp_path, now=now)
    gateway.close()


def test_worker_processes_judge_chunks_at_once_with_the_same_outcome(
    live: tuple[Gateway, Drop],
) -> None:
    gw, drop = live
    good = drop.envelopes(6)
    path = drop.upload("parallel.jsonl", [*good[:3], b"not json", *good[3:], good[0]])
    result = process_file(gw, sender=ZORG, path=path, folders=drop.folders, workers=2)
    judged = outcomes(drop.receipt(result))
    assert judged[1:7] == [
        *[("accepted", None)] * 2, ("refused", "envelope_invalid"), *[("accepted", None)] * 3
    ]  # fmt: skip
    # Lines 0 and 7 carry the same notice; chunks are judged at once, so either may win.
    assert sorted([judged[0], judged[7]]) == [("accepted", None), ("duplicate", None)]
    assert stored(gw) == 6


def test_a_file_renamed_over_the_upload_while_workers_judge_it_waits_for_its_own_round(
    live: tuple[Gateway, Drop], monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, drop = live
    envelopes = drop.envelopes(8)
    path = drop.upload("swap.jsonl", envelopes[:6])
    real = batch._scan

    def replaced_after_the_scan(handle: Any) -> Any:
        scan = real(handle)
        os.replace(drop.upload("other.jsonl", envelopes[6:]), path)
        return scan

    monkeypatch.setattr(batch, "_scan", replaced_after_the_scan)
    result = process_file(gw, sender=ZORG, path=path, folders=drop.folders, workers=2)
    # Every line of the file that was scanned is judged, by this process where the
    # helper could not open it; the file renamed over it stays for the next round.
    assert outcomes(drop.receipt(result)) == [("accepted", None)] * 6
    assert result.moved_to == path and stored(gw) == 6
    monkeypatch.setattr(batch, "_scan", real)
    again = process_file(gw, sender=ZORG, path=path, folders=drop.folders, workers=2)
    assert outcomes(drop.receipt(again)) == [("accepted", None)] * 2
    assert stored(gw) == 8


def scanned(path: Path, data: bytes) -> list[Any]:
    """The lines the batch processor finds in a file of ``data``."""
    path.write_bytes(data)
    with path.open("rb") as handle:
        return list(batch._lines(handle))


def test_a_worker_reads_lines_only_from_the_file_that_was_scanned(tmp_path: Path) -> None:
    path = tmp_path / "upload.jsonl"
    lines = scanned(path, b"\xef\xbb\xbffirst\r\nsecond\n")
    source = batch._Source.of(path, os.stat(path))
    fd = source.open()
    try:
        assert [batch._read(fd, line) for line in lines] == [b"first\r", b"second"]
    finally:
        os.close(fd)
    # Renamed over by another complete file: not the one scanned, so not read.
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"first\r\nsecond\n")
    os.replace(other, path)
    with pytest.raises(batch.FileChanged):
        source.open()
    # Written to in place after the scan (the same inode, a new size).
    source = batch._Source.of(path, os.stat(path))
    with path.open("ab") as handle:
        handle.write(b"third\n")
    with pytest.raises(batch.FileChanged):
        source.open()


def test_a_line_cut_short_after_the_scan_is_not_read_as_a_shorter_one(tmp_path: Path) -> None:
    path = tmp_path / "upload.jsonl"
    lines = scanned(path, b"one\ntwo\n")
    os.truncate(path, 5)
    with path.open("rb") as handle, pytest.raises(batch.FileChanged):
        batch._read(handle.fileno(), lines[1])


def test_an_upload_replaced_after_it_was_judged_stays_for_the_next_round(
    gw: Gateway, drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = drop.envelopes(2)
    path = drop.upload("swap.jsonl", [first])
    real = batch._deliver

    def replaced_meanwhile(*args: Any) -> batch.BatchResult:
        # The creditor renames another complete file over it.
        os.replace(drop.upload("other.jsonl", [second]), path)
        return real(*args)

    monkeypatch.setattr(batch, "_deliver", replaced_meanwhile)
    result = process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    assert result.moved_to == path and path.exists()
    assert outcomes(drop.receipt(result)) == [("accepted", None)]
    monkeypatch.setattr(batch, "_deliver", real)
    again = process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    assert again.file_id != result.file_id and not path.exists()
    assert stored(gw) == 2


def test_an_upload_on_another_file_system_is_copied_out_then_removed(
    gw: Gateway, drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = drop.upload("far.jsonl", drop.envelopes(1))
    real = os.replace

    def across_devices(src: Any, dst: Any) -> None:
        if Path(src) == path:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst)

    monkeypatch.setattr(batch.os, "replace", across_devices)
    content = path.read_bytes()
    result = process_file(gw, sender=ZORG, path=path, folders=drop.folders)
    assert not path.exists() and result.moved_to.read_bytes() == content
