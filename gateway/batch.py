"""Batch files: a complete upload in a creditor's inbox becomes one signed receipt.

A batch file is JSON Lines, one ``{"envelope": ...}`` per line (docs/envelope.md,
section 10.1). ``process_file`` judges every line through the same pipeline as the REST
intake (``gateway.ingest``), a chunk of lines per transaction: each chunk stores its
accepted notices and, in the same transaction, what became of each of its lines
(``batch_lines``). A restart therefore resumes after the last chunk committed, and a
line is never judged twice. When every line is judged, one transaction signs the
receipt over all of them; the receipt is then written beside the upload
(``<name>.receipt.jws``) and the upload moved out of the inbox.

A file that is not UTF-8, holds a NUL byte, or is too large is refused as a whole: it
goes to quarantine, and its receipt lists no items and says why (``refused``).

Uploading the same file again is a new delivery: its lines were stored before, so every
one is a ``duplicate``.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import logging
import multiprocessing
import os
import shutil
import stat
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from sqlalchemy import Connection, insert, select, update

from gateway import dropbox, ingest
from gateway.audit import step
from gateway.ingest import Item
from gateway.service import Gateway, start_worker, uncollected, worker_gateway
from gateway.store.bulk import insert_rows
from gateway.store.schema import batch_files, batch_lines, receipts
from keys.jose import loads_object
from keys.jwk import OIN
from keys.limits import MAX_ENVELOPE_BYTES

__all__ = [
    "CHUNK_LINES",
    "MAX_FILE_BYTES",
    "MAX_FILE_LINES",
    "BatchResult",
    "FileChanged",
    "Folders",
    "folders_for",
    "process_file",
    "process_waiting",
]

log = logging.getLogger(__name__)

MAX_FILE_LINES = 100_000
MAX_FILE_BYTES = 1024 * 1024 * 1024
CHUNK_LINES = 500
"""Lines judged and committed together."""
MAX_LINE_BYTES = MAX_ENVELOPE_BYTES + 64
"""An envelope and the ``{"envelope":""}`` around it."""
BOM = b"\xef\xbb\xbf"
BLOCK_BYTES = 1 << 20
KEPT_DIR = "batches"
"""Under the gateway's home: ``<OIN>/done`` and ``<OIN>/quarantine``, for the operator."""
BATCH_ACTIVITY = "vroegsignalering: ontvangst batchbestand"

Status = Literal["done", "quarantined"]


@dataclass(frozen=True)
class BatchResult:
    """What became of one file: its receipt, where the upload went, and the counts."""

    file_id: int
    status: Status
    receipt: Path
    moved_to: Path
    counts: dict[str, int]


@dataclass(frozen=True)
class Folders:
    """Where a creditor's uploads are read from and what is written back."""

    receipts: Path
    done: Path
    quarantine: Path


def process_file(
    gw: Gateway, *, sender: OIN, path: Path, folders: Folders, workers: int = 0
) -> BatchResult:
    """Judge every line of the complete upload ``path`` and write its receipt; with
    ``workers`` processes judging chunks at once."""
    with _open(path) as handle:
        judged = os.fstat(handle.fileno())
        scan = _scan(handle)
        with gw.engine.begin() as conn:
            file_id, receipt_id, status = _claim(
                gw, conn, sender, path.name, scan.sha256, scan.size, folders
            )
        if status == "processing":
            if scan.refused is None:
                handle.seek(0)
                source = _Source.of(path, judged)
                _judge(gw, sender, file_id, receipt_id, handle, source, workers=workers)
            with gw.engine.begin() as conn:
                status = _finish(
                    gw, conn, sender, file_id, receipt_id, path.name, scan.lines, scan.refused
                )
    return _deliver(gw, sender, path, file_id, receipt_id, status, folders, judged)


def _open(path: Path) -> BinaryIO:
    # Never through a link: the uploader must not make the gateway read another file.
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")


@dataclass(frozen=True)
class _Scan:
    sha256: str
    size: int
    lines: int
    refused: str | None


def _scan(handle: BinaryIO) -> _Scan:
    """One pass over the file, a block at a time: its hash, size, lines, and whether it
    can be read at all (UTF-8 throughout, no NUL byte, within the limits)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = newlines = 0
    last = head = b""
    readable = True
    while block := handle.read(BLOCK_BYTES):
        head = head or block[: len(BOM)]
        digest.update(block)
        size += len(block)
        newlines += block.count(b"\n")
        last = block[-1:]
        if readable and (b"\x00" in block or not _decodes(decoder, block)):
            readable = False
    if readable and not _decodes(decoder, b"", final=True):
        readable = False
    lines = newlines + (1 if size and last != b"\n" else 0)
    if size == len(BOM) and head == BOM:
        lines = 0  # a byte order mark alone
    refused = None
    if size > MAX_FILE_BYTES or lines > MAX_FILE_LINES:
        refused = "file_too_large"
    elif not readable:
        refused = "file_unreadable"
    return _Scan(digest.hexdigest(), size, lines, refused)


def _decodes(decoder: codecs.IncrementalDecoder, block: bytes, *, final: bool = False) -> bool:
    try:
        decoder.decode(block, final)
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Line:
    """Where a line's bytes are: its number from 0, the offset and size of its bytes
    without the LF; ``digest`` only for a line too long to be an envelope line, whose
    bytes are not read again (their SHA-256)."""

    number: int
    offset: int
    size: int
    digest: str | None = None


def _lines(handle: BinaryIO) -> Iterator[_Line]:
    """Each line of the file, found by reading it once; its bytes are read again where
    it is judged (``_read``), so the lines a worker judges never pass through a pipe."""
    number = offset = 0
    first = True
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        start = offset
        offset += len(line)
        if first:
            first = False
            if line.startswith(BOM):
                line, start = line[len(BOM) :], start + len(BOM)
                if not line:
                    return  # a byte order mark alone
        if line.endswith(b"\n") or len(line) <= MAX_LINE_BYTES:
            yield _Line(number, start, len(line.removesuffix(b"\n")))
        else:
            # Longer than any envelope: hash the rest without holding it.
            digest = hashlib.sha256(line)
            while line and not line.endswith(b"\n"):
                line = handle.readline(BLOCK_BYTES)
                offset += len(line)
                digest.update(line.removesuffix(b"\n"))
            yield _Line(number, start, 0, digest.hexdigest())
        number += 1


def _read(fd: int, line: _Line) -> bytes:
    """The bytes of ``line`` (none for one too long to be an envelope line)."""
    if line.digest is not None:
        return b""
    body = os.pread(fd, line.size, line.offset)
    if len(body) != line.size:
        raise FileChanged("the batch file was shortened while it was judged")
    return body


class FileChanged(RuntimeError):
    """The upload is not the file that was scanned any more."""


@dataclass(frozen=True)
class _Source:
    """The upload being judged, as a worker process opens it: by path, never through a
    link, and only while it is still the same file (device, inode, size, mtime)."""

    path: str
    identity: tuple[int, int, int, int]

    @classmethod
    def of(cls, path: Path, st: os.stat_result) -> _Source:
        return cls(str(path), _identity(st))

    def open(self) -> int:
        fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        if _identity(os.fstat(fd)) != self.identity:
            os.close(fd)
            raise FileChanged("the batch file was replaced or changed while it was judged")
        return fd


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _claim(
    gw: Gateway,
    conn: Connection,
    sender: OIN,
    name: str,
    sha: str,
    size: int,
    folders: Folders,
) -> tuple[int, str, str]:
    """The batch this upload belongs to: one left unfinished, or a new one."""
    rows = conn.execute(
        select(batch_files.c.id, batch_files.c.receipt_id, batch_files.c.status)
        .where(
            batch_files.c.creditor_oin == sender,
            batch_files.c.name == name,
            batch_files.c.sha256 == sha,
        )
        .order_by(batch_files.c.id.desc())
    ).all()
    for row in rows:
        # Unfinished, or finished but not yet moved out of the inbox (a crash in
        # between): the same delivery. Once moved, the same bytes again are a new one.
        if row.status == "processing" or not _moved(folders, row.id, name, row.status):
            return int(row.id), str(row.receipt_id), str(row.status)
    receipt_id = str(uuid.uuid4())
    file_id = conn.execute(
        insert(batch_files)
        .values(
            creditor_oin=sender,
            name=name,
            sha256=sha,
            size=size,
            received_at=gw.clock.now(),
            status="processing",
            receipt_id=receipt_id,
        )
        .returning(batch_files.c.id)
    ).scalar_one()
    gw.audit.append(conn, [_event(sender, gw, "batch.received", name, "received", sha=sha)])
    return int(file_id), receipt_id, "processing"


def _envelope(line: bytes) -> str | None:
    """The envelope a line carries, or None when the line is not well formed."""
    if len(line) > MAX_LINE_BYTES:
        return None
    try:
        doc = loads_object(line)
    except ValueError:
        return None
    envelope = doc.get("envelope")
    if set(doc) != {"envelope"} or not isinstance(envelope, str) or not envelope.isascii():
        return None
    return envelope


def _judge(
    gw: Gateway,
    sender: OIN,
    file_id: int,
    receipt_id: str,
    handle: BinaryIO,
    source: _Source,
    *,
    workers: int,
) -> None:
    """Judge the lines not judged before, a chunk per transaction; with ``workers``,
    that many processes (this one among them) judge chunks at once (the cryptography
    is most of the work). A worker reads its chunk's lines from the file itself, by
    its name; once a renamed-over upload stops it, this process judges the rest from
    the file it holds open, which is the one scanned."""
    with gw.engine.connect() as conn:
        done = set(
            conn.execute(select(batch_lines.c.line).where(batch_lines.c.file_id == file_id))
            .scalars()
            .all()
        )
    chunks = _chunks(line for line in _lines(handle) if line.number not in done)
    fd = handle.fileno()
    if workers <= 1:
        for chunk in chunks:
            _judge_chunk(gw, sender, file_id, receipt_id, fd, chunk)
        return
    # This process judges chunks too, beside workers - 1 helpers: one process less to
    # hold the whole stack in memory.
    helpers = workers - 1
    context = multiprocessing.get_context("spawn")
    home = str(gw.settings.home)
    with ProcessPoolExecutor(
        helpers, mp_context=context, initializer=start_worker, initargs=(home,)
    ) as pool:
        pending: set[Future[list[_Line] | None]] = set()
        shared = True  # while the helpers can open the file that was scanned
        for chunk in chunks:
            finished = {future for future in pending if future.done()}
            for future in finished:
                shared = _left(gw, sender, file_id, receipt_id, fd, future) and shared
            pending -= finished
            if shared and len(pending) < 2 * helpers:  # each helper busy, one chunk queued
                pending.add(pool.submit(_worker_chunk, sender, file_id, receipt_id, source, chunk))
            else:
                _judge_chunk(gw, sender, file_id, receipt_id, fd, chunk)
        for future in pending:
            _left(gw, sender, file_id, receipt_id, fd, future)


def _left(
    gw: Gateway,
    sender: OIN,
    file_id: int,
    receipt_id: str,
    fd: int,
    future: Future[list[_Line] | None],
) -> bool:
    """Judge here the chunk a helper handed back (the file it found under the upload's
    name is not the one scanned); whether the helper judged its chunk."""
    chunk = future.result()
    if chunk is not None:
        _judge_chunk(gw, sender, file_id, receipt_id, fd, chunk)
    return chunk is None


def _chunks(lines: Iterable[_Line]) -> Iterator[list[_Line]]:
    chunk: list[_Line] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _worker_chunk(
    sender: OIN, file_id: int, receipt_id: str, source: _Source, chunk: list[_Line]
) -> list[_Line] | None:
    """Judge ``chunk``; or hand it back unjudged when the upload's name no longer leads
    to the file that was scanned (the main process, which holds that file open, judges
    it then)."""
    try:
        fd = source.open()
    except FileChanged:
        return chunk
    try:
        with uncollected():
            _judge_chunk(worker_gateway(), sender, file_id, receipt_id, fd, chunk)
    finally:
        os.close(fd)
    return None


def _judge_chunk(
    gw: Gateway,
    sender: OIN,
    file_id: int,
    receipt_id: str,
    fd: int,
    chunk: list[_Line],
) -> None:
    bodies = [_read(fd, line) for line in chunk]
    good = [
        (line.number, env)
        for line, body in zip(chunk, bodies, strict=True)
        if (env := _envelope(body)) is not None
    ]
    prepared = ingest.prepare(
        gw, sender=sender, envelopes=[e for _, e in good], positions=[n for n, _ in good]
    )
    wellformed = {n for n, _ in good}
    with gw.engine.begin() as conn:
        items, events = ingest.store(gw, conn, sender, prepared, receipt_id=receipt_id)
        for line, body in zip(chunk, bodies, strict=True):
            if line.number not in wellformed:
                sha = line.digest or hashlib.sha256(body).hexdigest()
                items.append(Item(line.number, sha, None, "refused", "envelope_invalid"))
                events.append(
                    _event(
                        sender, gw, "notice.refused", f"line {line.number}", "refused", "malformed"
                    )
                )
        insert_rows(
            conn,
            batch_lines,
            [
                {
                    "file_id": file_id,
                    "line": i.position,
                    "envelope_sha256": i.envelope_sha256,
                    "jti": i.jti,
                    "outcome": i.outcome,
                    "reason": i.reason,
                }
                for i in items
            ],
        )
        gw.audit.append(conn, events)


def _finish(
    gw: Gateway,
    conn: Connection,
    sender: OIN,
    file_id: int,
    receipt_id: str,
    name: str,
    count: int,
    refused: str | None,
) -> Status:
    """Sign the receipt over every line judged, and close the batch."""
    items = [
        Item(row.line, row.envelope_sha256, row.jti, row.outcome, row.reason)
        for row in conn.execute(
            select(batch_lines).where(batch_lines.c.file_id == file_id).order_by(batch_lines.c.line)
        )
    ]
    if refused is None and len(items) != count:
        raise RuntimeError(f"batch {file_id}: {len(items)} of {count} lines judged")
    status: Status = "done" if refused is None else "quarantined"
    events = [] if refused is None else [_event(sender, gw, "batch.quarantined", name, refused)]
    ingest.issue(gw, conn, sender, receipt_id, items, events, "sftp", name, refused=refused)
    conn.execute(
        update(batch_files)
        .where(batch_files.c.id == file_id)
        .values(status=status, lines=len(items), finished_at=gw.clock.now())
    )
    return status


def _deliver(
    gw: Gateway,
    sender: OIN,
    path: Path,
    file_id: int,
    receipt_id: str,
    status: str,
    folders: Folders,
    judged: os.stat_result,
) -> BatchResult:
    """Write the receipt where the creditor reads it, then move the upload away."""
    with gw.engine.connect() as conn:
        jws = conn.execute(select(receipts.c.jws).where(receipts.c.id == receipt_id)).scalar_one()
        counts: dict[str, int] = {}
        for outcome in conn.execute(
            select(batch_lines.c.outcome).where(batch_lines.c.file_id == file_id)
        ).scalars():
            counts[outcome] = counts.get(outcome, 0) + 1
    receipt = folders.receipts / dropbox.receipt_name(path.name)
    _write_receipt(receipt, (jws + "\n").encode("ascii"))
    target = _moved_path(folders, file_id, path.name, status)
    if not _move(path, target, judged):
        target = path  # replaced since it was judged: a new delivery, for the next round
    return BatchResult(
        file_id, "done" if status == "done" else "quarantined", receipt, target, counts
    )


def _move(path: Path, target: Path, judged: os.stat_result) -> bool:
    """Move the judged upload out of the inbox, unless the uploader replaced it meanwhile
    (OpenSSH cannot stop a creditor renaming over its own file); across file systems
    by a copy that is complete before the upload goes."""
    now = os.stat(path, follow_symlinks=False)
    if (now.st_dev, now.st_ino) != (judged.st_dev, judged.st_ino):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(path, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        copy = target.with_name(f".{target.name}.tmp")
        with _open(path) as source, open(copy, "wb") as sink:
            shutil.copyfileobj(source, sink, BLOCK_BYTES)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(copy, target)
        os.unlink(path)
    return True


def _moved_path(folders: Folders, file_id: int, name: str, status: str) -> Path:
    base = folders.done if status == "done" else folders.quarantine
    return base / f"{file_id:08d}-{name}"


def _moved(folders: Folders, file_id: int, name: str, status: str) -> bool:
    return _moved_path(folders, file_id, name, status).exists()


RECEIPT_MODE = 0o640
"""Read by the receipts folder's group: in OpenSSH mode, the creditor's (docs/deploy-sftp.md)."""


def _write_receipt(path: Path, data: bytes) -> None:
    """Write a receipt through a temporary file renamed into place, never through a link.

    The file gets mode 0640 and the group of its folder (which a setgid folder hands
    down; otherwise it is set here), so in OpenSSH mode the creditor's OS user, in that
    group, can read it. A folder that is a link, or that someone else could write in, is
    refused: a creditor able to plant files there could make the gateway overwrite
    another file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        st = os.fstat(folder)
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise PermissionError(f"{path.parent} is group- or world-writable; no receipt written")
        tmp = f".{path.name}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=folder)  # left by a crash: ours, the folder is ours alone
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(tmp, flags, RECEIPT_MODE, dir_fd=folder)
        try:
            if os.fstat(fd).st_gid != st.st_gid:
                os.fchown(fd, -1, st.st_gid)
            os.fchmod(fd, RECEIPT_MODE)
            with os.fdopen(fd, "wb", closefd=False) as handle:
                handle.write(data)
                handle.flush()
            os.fsync(fd)
        finally:
            os.close(fd)
        # rename(2) replaces a link at the target, never follows it.
        os.replace(path.parent / tmp, path)
        os.fsync(folder)
    finally:
        os.close(folder)


def _event(
    sender: OIN,
    gw: Gateway,
    action: str,
    obj: str,
    result: str,
    reason: str | None = None,
    **extra: str,
) -> dict[str, str]:
    return step(
        action=action,
        obj=obj,
        result=result,
        reason=reason,
        organisation=sender,
        role="creditor",
        activity=BATCH_ACTIVITY,
        now=gw.clock.now(),
        **extra,
    )


def folders_for(home: Path, oin: str, *, receipts: Path | None = None) -> Folders:
    """A creditor's receipts folder (by default the one in its embedded drop folder);
    where its uploads go once judged, in the gateway's home, outside the folder it sees
    over SFTP."""
    kept = home / KEPT_DIR / oin
    return Folders(
        dropbox.receipts_dir(home, oin) if receipts is None else receipts,
        kept / "done",
        kept / "quarantine",
    )


def process_waiting(gw: Gateway, *, workers: int = 0) -> list[BatchResult]:
    """Every complete upload waiting in any creditor's inbox, one after another: the
    drop folders of the settings' ``sftp_mode`` (``dropbox.dropboxes``).

    A file that fails (the store is down, say) stays where it is for the next round;
    the others go on.
    """
    home = gw.settings.home
    results = []
    for oin, box in dropbox.dropboxes(gw.settings).items():
        folders = folders_for(home, oin, receipts=box.receipts)
        for path in dropbox.uploads_in(box.inbox):
            try:
                results.append(
                    process_file(gw, sender=OIN(oin), path=path, folders=folders, workers=workers)
                )
            except Exception:  # noqa: BLE001 (one bad round must not stop the others)
                log.exception("batch file of %s not processed; retried next round", oin)
    return results
