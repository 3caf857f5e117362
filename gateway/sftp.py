"""The embedded SFTP intake: creditors upload batch files into their own drop folder.

An asyncssh server with the SFTP subsystem only: no shell, exec, SCP, port or agent
forwarding, X11 or pty. Logins are by public key only; the user name is the creditor's
OIN and the key must be one of that creditor's registered, unrevoked SSH keys
(``partner_ssh_keys``), read from the store at every login.

Each creditor sees only its own folder (``gateway.dropbox``), as this virtual tree:

    /inbox/      create and write ``.NAME.jsonl.part``, rename it to ``NAME.jsonl``, list
    /receipts/   read and list

Paths are resolved here, not by asyncssh's chroot: a path that leaves the root
(``../``) or names anything but these two folders and the files directly in them
(``/etc/passwd``) is refused; files are opened with ``O_NOFOLLOW`` and must be regular
files; ``symlink``, ``link``, ``mkdir`` and the rest are refused. A write that would
make a file larger than ``sftp_max_file_bytes`` is refused and the partial upload is
deleted; since uploads are written under a temporary name and only a closed temporary
upload can be renamed to a complete name (never over an existing one), the batch
processor never sees a partial or oversized file.

Every login (accepted or refused, one event per connection), refusal and completed
upload appends an audit event with the creditor's OIN as organisation; names and sizes,
never file contents. A session that is refused ``MAX_REFUSALS`` times is closed, so a
client cannot flood the audit log.

``serve`` runs the server in a daemon thread with its own event loop
(``SFTPServerThread``), beside uvicorn in the main thread. A thread is the simplest
robust choice: it starts and stops with the ``serve`` process (no second process to
supervise or signal), a failure to bind is reported before the HTTPS API starts, and it
shares nothing with the API but the settings; with several API workers it stays in the
supervising process. Store calls (logins, audit events) run in worker threads so a
slow store does not stall the other sessions.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import stat
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncssh
from asyncssh import (
    FXF_APPEND,
    FXF_CREAT,
    FXF_EXCL,
    FXF_TRUNC,
    FXF_WRITE,
    SFTPAttrs,
    SFTPError,
    SFTPName,
)

from gateway.audit import new_trace_id, step
from gateway.dropbox import (
    INBOX,
    MAX_NAME_CHARS,
    RECEIPTS,
    ensure_dropbox,
    is_complete_upload,
    is_oin,
    is_temporary_upload,
)
from gateway.partners import SSHLogin
from gateway.service import Gateway
from keys.ssh import SSHPublicKey, load_or_create_host_key

__all__ = [
    "ACTIVITY",
    "MAX_READ_BYTES",
    "MAX_REFUSALS",
    "SFTPIntake",
    "SFTPServerThread",
    "start_in_thread",
]

logger = logging.getLogger(__name__)

ACTIVITY = "vroegsignalering: ontvangst batchbestand"
MAX_REFUSALS = 20
"""Refused requests after which a session is closed."""
MAX_READ_BYTES = 256 * 1024
"""The most one read request returns."""
LOGIN_TIMEOUT_SECONDS = 60

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_AREAS = (INBOX, RECEIPTS)


@dataclass(frozen=True)
class _Target:
    """A path as the client sees it: the root, a folder, or a file in a folder."""

    area: str | None = None
    name: str | None = None

    @property
    def virtual(self) -> bytes:
        parts = [p for p in (self.area, self.name) if p]
        return ("/" + "/".join(parts)).encode("ascii")


def _parse(path: bytes) -> _Target | None:
    """The target of a client's path, or None when it leaves the two folders.

    Relative paths start at the root (the session's working directory); ``..`` above
    the root, any other top-level name, sub-folders and names outside ``_NAME`` are
    outside.
    """
    try:
        text = path.decode("ascii")
    except UnicodeDecodeError:
        return None
    if "\x00" in text or "\\" in text:
        return None
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    if not parts:
        return _Target()
    if parts[0] not in _AREAS or len(parts) > 2:
        return None
    if len(parts) == 1:
        return _Target(parts[0])
    name = parts[1]
    if len(name) > MAX_NAME_CHARS or _NAME.fullmatch(name) is None:
        return None
    return _Target(parts[0], name)


def _attrs(st: os.stat_result) -> SFTPAttrs:
    # Type, mode bits, size and times; the gateway's uid and gid are none of the client's.
    return SFTPAttrs(
        size=st.st_size,
        permissions=st.st_mode,
        atime=int(st.st_atime),
        mtime=int(st.st_mtime),
    )


class SFTPIntake:
    """What every session shares: the gateway, the host key, the limit, open uploads."""

    def __init__(self, gw: Gateway, *, host_key: bytes, max_file_bytes: int | None = None):
        self.gw = gw
        self.home = gw.settings.home
        self.max_file_bytes = (
            gw.settings.sftp_max_file_bytes if max_file_bytes is None else max_file_bytes
        )
        self._host_key = asyncssh.import_private_key(host_key)
        self._writing: dict[str, int] = {}

    @property
    def host_key_fingerprint(self) -> str:
        """The SHA-256 fingerprint of the host key, as ``ssh-keygen -l`` prints it."""
        return self._host_key.get_fingerprint("sha256")

    @classmethod
    def from_gateway(cls, gw: Gateway) -> SFTPIntake:
        """The intake of a gateway, with the host key in its home (made on first use)."""
        private, _ = load_or_create_host_key(gw.settings.home)
        return cls(gw, host_key=private)

    async def listen(self, host: str, port: int) -> asyncssh.SSHAcceptor:
        """Start accepting connections; ``port`` 0 picks a free port."""
        return await asyncssh.create_server(
            lambda: _Login(self),
            host,
            port,
            server_host_keys=[self._host_key],
            sftp_factory=lambda chan: _Session(chan, self),
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=False,
            password_auth=False,
            kbdint_auth=False,
            gss_host=None,
            login_timeout=LOGIN_TIMEOUT_SECONDS,
            config=None,
        )

    # -- the store, off the event loop ---------------------------------------------

    async def identify(self, username: str, key: SSHPublicKey) -> SSHLogin:
        """Whether ``key`` may log in as ``username``, read from the store now."""
        return await asyncio.to_thread(self._identify, username, key)

    def _identify(self, username: str, key: SSHPublicKey) -> SSHLogin:
        with self.gw.engine.connect() as conn:
            return self.gw.directory.identify_ssh(
                conn, username=username, key=key, now=self.gw.clock.now()
            )

    async def record(self, event: Mapping[str, str]) -> None:
        """Append one audit event in its own transaction."""
        await asyncio.to_thread(self._record, event)

    def _record(self, event: Mapping[str, str]) -> None:
        with self.gw.engine.begin() as conn:
            self.gw.audit.append(conn, [event])

    def event(
        self,
        *,
        action: str,
        obj: str,
        result: str,
        oin: str | None,
        trace_id: str,
        reason: str | None = None,
        **extra: str,
    ) -> dict[str, str]:
        """An audit event of this intake; a user name that is no OIN is not recorded."""
        organisation = oin if oin and is_oin(oin) else self.gw.settings.gateway_id[:20]
        return step(
            action=action,
            obj=obj,
            result=result,
            organisation=organisation,
            role="creditor" if oin and is_oin(oin) else "gateway",
            activity=ACTIVITY,
            now=self.gw.clock.now(),
            trace_id=trace_id,
            reason=reason,
            intake="sftp",
            **extra,
        )

    # -- uploads open for writing, across sessions ----------------------------------

    def opened(self, path: Path) -> None:
        self._writing[str(path)] = self._writing.get(str(path), 0) + 1

    def closed(self, path: Path) -> None:
        left = self._writing.get(str(path), 0) - 1
        if left > 0:
            self._writing[str(path)] = left
        else:
            self._writing.pop(str(path), None)

    def is_writing(self, path: Path) -> bool:
        return str(path) in self._writing


class _Login(asyncssh.SSHServer):
    """One connection: public-key login as a creditor, one audit event for the login."""

    def __init__(self, intake: SFTPIntake) -> None:
        self.intake = intake
        self.trace_id = new_trace_id()
        self.username: str | None = None
        self.oin: str | None = None
        self.fingerprint = "-"
        self.refusal = "no_key_offered"
        self.authenticated = False
        self._pending: set[asyncio.Task[None]] = set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.username is not None and not self.authenticated:
            username = self.username
            event = self.intake.event(
                action="sftp.login",
                obj=self.fingerprint,
                result="refused",
                reason=self.refusal,
                oin=username if is_oin(username) else None,
                trace_id=self.trace_id,
            )
            self._spawn(self.intake.record(event))

    def begin_auth(self, username: str) -> bool:
        self.username = username
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        presented = SSHPublicKey(key.algorithm.decode("ascii"), key.public_data)
        self.fingerprint = presented.fingerprint
        try:
            login = await self.intake.identify(username, presented)
        except Exception as exc:  # noqa: BLE001 (the SFTP edge: a failing store refuses)
            logger.error("SFTP login check failed: %s", type(exc).__name__)
            self.refusal = "store_unavailable"
            return False
        if login.partner is None:
            self.refusal = login.refusal or "key_unknown"
            return False
        # Known key; the login completes only if the client proves it holds the key.
        self.oin, self.refusal = login.partner.oin, "signature_invalid"
        return True

    def auth_completed(self) -> None:
        self.authenticated = True
        event = self.intake.event(
            action="sftp.login",
            obj=self.fingerprint,
            result="accepted",
            oin=self.oin,
            trace_id=self.trace_id,
        )
        self._spawn(self.intake.record(event))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(_logged(work))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


async def _logged(work: Any) -> None:
    try:
        await work
    except Exception as exc:  # noqa: BLE001 (the SFTP edge: an audit write that failed)
        logger.error("SFTP audit event not written: %s", type(exc).__name__)


class _File:
    """An open file of a session."""

    def __init__(self, fd: int, path: Path, name: str, *, writable: bool, append: bool):
        self.fd: int | None = fd
        self.path, self.name = path, name
        self.writable, self.append = writable, append
        self.refused = False


class _Session(asyncssh.SFTPServer):
    """The SFTP subsystem of one logged-in creditor, confined to its drop folder."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], intake: SFTPIntake) -> None:
        super().__init__(chan)
        owner = cast(_Login, chan.get_connection().get_owner())
        if not owner.authenticated or owner.oin is None:
            raise PermissionError("SFTP before login")
        self.intake = intake
        self.oin: str = owner.oin
        self.trace_id = owner.trace_id
        self.root = ensure_dropbox(intake.home, self.oin)
        self.refusals = 0
        self._files: list[_File] = []

    # -- paths -------------------------------------------------------------------

    def _local(self, target: _Target) -> Path:
        path = self.root
        if target.area:
            path = path / target.area
        if target.name:
            path = path / target.name
        return path

    async def _target(self, path: bytes, operation: str) -> _Target:
        target = _parse(path)
        if target is None:
            raise await self._refuse(operation, "path_outside")
        return target

    async def _file(self, path: bytes, operation: str) -> _Target:
        target = await self._target(path, operation)
        if target.name is None:
            raise await self._refuse(operation, "not_a_file")
        return target

    async def _refuse(
        self,
        operation: str,
        reason: str,
        error: Callable[[str], SFTPError] = asyncssh.SFTPPermissionDenied,
        *,
        obj: str | None = None,
    ) -> SFTPError:
        """Record a refusal and return the error to raise; close a session that persists."""
        self.refusals += 1
        await self.intake.record(
            self.intake.event(
                action="sftp.refused",
                obj=obj or operation,
                result="refused",
                reason=reason,
                oin=self.oin,
                trace_id=self.trace_id,
                operation=operation,
            )
        )
        if self.refusals >= MAX_REFUSALS:
            await self.intake.record(
                self.intake.event(
                    action="sftp.session",
                    obj="-",
                    result="closed",
                    reason="too_many_refusals",
                    oin=self.oin,
                    trace_id=self.trace_id,
                )
            )
            self.connection.close()
        return error(f"{operation} refused: {reason}")

    # -- reading the tree ----------------------------------------------------------

    async def realpath(self, path: bytes) -> bytes:
        return (await self._target(path, "realpath")).virtual

    async def stat(self, path: bytes) -> SFTPAttrs:
        return await self.lstat(path)

    async def lstat(self, path: bytes) -> SFTPAttrs:
        target = await self._target(path, "stat")
        st = os.lstat(self._local(target))
        if target.name is not None and not stat.S_ISREG(st.st_mode):
            raise asyncssh.SFTPNoSuchFile("no such file")
        return _attrs(st)

    async def fstat(self, file_obj: object) -> SFTPAttrs:
        file = self._handle(file_obj)
        if file.fd is None:
            raise asyncssh.SFTPFailure("the upload was refused")
        return _attrs(os.fstat(file.fd))

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        target = await self._target(path, "list")
        if target.name is not None:
            raise asyncssh.SFTPNotADirectory("not a folder")
        if target.area is None:
            for area in _AREAS:
                st = os.lstat(self.root / area)
                yield SFTPName(area.encode("ascii"), attrs=_attrs(st))
            return
        with os.scandir(self._local(target)) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if _NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    yield SFTPName(entry.name.encode("ascii"), attrs=_attrs(st))

    # -- files -----------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        target = await self._file(path, "open")
        name = cast(str, target.name)
        writing = bool(pflags & (FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC))
        if target.area == RECEIPTS:
            if writing:
                raise await self._refuse("open", "receipts_read_only", obj=name)
            flags = os.O_RDONLY
        else:
            if not pflags & FXF_WRITE:
                raise await self._refuse("open", "inbox_write_only", obj=name)
            if not is_temporary_upload(name):
                raise await self._refuse("open", "not_a_temporary_name", obj=name)
            flags = os.O_WRONLY
            for sftp_flag, os_flag in (
                (FXF_CREAT, os.O_CREAT),
                (FXF_TRUNC, os.O_TRUNC),
                (FXF_EXCL, os.O_EXCL),
                (FXF_APPEND, os.O_APPEND),
            ):
                if pflags & sftp_flag:
                    flags |= os_flag
        local = self._local(target)
        try:
            # Never through a link; O_NONBLOCK so that a FIFO cannot hang the session.
            fd = os.open(local, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise await self._refuse("open", "link", obj=name) from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise await self._refuse("open", "not_a_file", obj=name)
        file = _File(fd, local, name, writable=writing, append=bool(pflags & FXF_APPEND))
        if writing:
            self.intake.opened(local)
        self._files.append(file)
        return file

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        file = self._handle(file_obj)
        if file.writable or file.fd is None:
            raise asyncssh.SFTPPermissionDenied("the inbox is write-only")
        return os.pread(file.fd, min(size, MAX_READ_BYTES), offset)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        file = self._handle(file_obj)
        if file.refused or file.fd is None:
            raise asyncssh.SFTPFailure("the upload was refused")
        if not file.writable:
            raise asyncssh.SFTPPermissionDenied("the receipts are read-only")
        start = os.fstat(file.fd).st_size if file.append else offset
        if start + len(data) > self.intake.max_file_bytes:
            await self._refuse_too_large(file)
            raise asyncssh.SFTPFailure(
                f"file larger than {self.intake.max_file_bytes} bytes: upload refused"
            )
        if file.append:
            return os.write(file.fd, data)
        return os.pwrite(file.fd, data, offset)

    async def _refuse_too_large(self, file: _File) -> None:
        file.refused = True
        self._close(file)
        file.path.unlink(missing_ok=True)
        await self.intake.record(
            self.intake.event(
                action="sftp.upload",
                obj=file.name,
                result="refused",
                reason="too_large",
                oin=self.oin,
                trace_id=self.trace_id,
                limit=str(self.intake.max_file_bytes),
            )
        )

    async def fsync(self, file_obj: object) -> None:
        file = self._handle(file_obj)
        if file.fd is not None and file.writable:
            os.fsync(file.fd)

    async def close(self, file_obj: object) -> None:
        file = self._handle(file_obj)
        self._close(file)
        if file in self._files:
            self._files.remove(file)

    def _close(self, file: _File) -> None:
        if file.fd is None:
            return
        os.close(file.fd)
        file.fd = None
        if file.writable:
            self.intake.closed(file.path)

    def _handle(self, file_obj: object) -> _File:
        if not isinstance(file_obj, _File):
            raise asyncssh.SFTPFailure("bad handle")
        return file_obj

    async def exit(self) -> None:
        for file in self._files:
            self._close(file)
        self._files.clear()

    # -- changing the tree -------------------------------------------------------------

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        old = await self._file(oldpath, "rename")
        new = await self._file(newpath, "rename")
        old_name, new_name = cast(str, old.name), cast(str, new.name)
        if old.area != INBOX or new.area != INBOX:
            raise await self._refuse("rename", "outside_inbox", obj=new_name)
        if not is_temporary_upload(old_name) or not is_complete_upload(new_name):
            raise await self._refuse("rename", "not_temporary_to_complete", obj=new_name)
        src, dst = self._local(old), self._local(new)
        if self.intake.is_writing(src):
            raise asyncssh.SFTPFailure("close the upload before renaming it")
        st = os.lstat(src)
        if not stat.S_ISREG(st.st_mode):
            raise asyncssh.SFTPNoSuchFile("no such file")
        if st.st_size > self.intake.max_file_bytes:
            src.unlink(missing_ok=True)
            raise await self._refuse("rename", "too_large", asyncssh.SFTPFailure, obj=new_name)
        event = self.intake.event(
            action="sftp.upload",
            obj=new_name,
            result="completed",
            oin=self.oin,
            trace_id=self.trace_id,
            size=str(st.st_size),
        )
        await asyncio.to_thread(self._complete, src, dst, event)

    def _complete(self, src: Path, dst: Path, event: Mapping[str, str]) -> None:
        """Give the upload its complete name, in the transaction that records it.

        A hard link fails when the name exists, so a complete upload is never replaced;
        if the audit event does not commit, the complete name is taken back.
        """
        try:
            with self.intake.gw.engine.begin() as conn:
                self.intake.gw.audit.append(conn, [event])
                try:
                    os.link(src, dst, follow_symlinks=False)
                except FileExistsError:
                    raise asyncssh.SFTPFileAlreadyExists("a file of that name exists") from None
        except SFTPError:
            raise
        except BaseException:
            dst.unlink(missing_ok=True)
            raise
        src.unlink(missing_ok=True)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        # The same as rename: a complete upload is never replaced.
        await self.rename(oldpath, newpath)

    async def remove(self, path: bytes) -> None:
        target = await self._file(path, "remove")
        name = cast(str, target.name)
        if target.area != INBOX or not is_temporary_upload(name):
            raise await self._refuse("remove", "only_temporary_uploads", obj=name)
        local = self._local(target)
        if not stat.S_ISREG(os.lstat(local).st_mode):
            raise asyncssh.SFTPNoSuchFile("no such file")
        local.unlink()

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        target = await self._file(path, "setstat")
        if target.area != INBOX or not is_temporary_upload(cast(str, target.name)):
            raise await self._refuse("setstat", "read_only")
        if attrs.size is not None:
            raise await self._refuse("setstat", "size_change")
        # Modes and times of an upload are the gateway's: accepted and ignored.

    async def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        file = self._handle(file_obj)
        if not file.writable:
            raise await self._refuse("setstat", "read_only")
        if attrs.size is not None:
            raise await self._refuse("setstat", "size_change")

    async def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self.setstat(path, attrs)

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        raise await self._refuse("mkdir", "no_folders")

    async def rmdir(self, path: bytes) -> None:
        raise await self._refuse("rmdir", "no_folders")

    async def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise await self._refuse("symlink", "no_links")

    async def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise await self._refuse("link", "no_links")

    async def readlink(self, path: bytes) -> bytes:
        raise await self._refuse("readlink", "no_links")

    async def statvfs(self, path: bytes) -> Any:
        raise asyncssh.SFTPOpUnsupported("statvfs is not offered")

    async def fstatvfs(self, file_obj: object) -> Any:
        raise asyncssh.SFTPOpUnsupported("statvfs is not offered")

    async def open56(
        self, path: bytes, desired_access: int, flags: int, attrs: SFTPAttrs
    ) -> object:
        raise asyncssh.SFTPOpUnsupported("SFTP version 3 only")


class SFTPServerThread:
    """The SFTP intake in a daemon thread with its own event loop."""

    def __init__(self, intake: SFTPIntake, host: str, port: int) -> None:
        self.intake, self.host, self.requested_port = intake, host, port
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="sftp-intake", daemon=True)

    def start(self) -> int:
        """Start listening; return the port, or raise why it could not bind."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self.port

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close the sessions, and wait for the thread."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 (the thread's edge: reported to start())
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        acceptor = await self.intake.listen(self.host, self.requested_port)
        self.port = acceptor.get_port()
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            acceptor.close()
            await acceptor.wait_closed()
            # Let the audit events of connections that just ended be written.
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if pending:
                await asyncio.wait(pending, timeout=5)


def start_in_thread(gw: Gateway, *, host: str, port: int) -> SFTPServerThread:
    """Start the SFTP intake of ``gw`` on ``host:port`` in a daemon thread."""
    server = SFTPServerThread(SFTPIntake.from_gateway(gw), host, port)
    server.start()
    return server
