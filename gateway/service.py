"""The composition root of the gateway: one place that wires the concrete parts."""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from gateway.checks import CheckContext, Checked, Checker, Refused
from gateway.clock import Clock, SystemClock
from gateway.partners import Directory
from gateway.settings import Settings
from gateway.store.atrest import BucketCipher
from gateway.store.auditlog import AuditLog
from gateway.store.engine import make_engine, migrate
from keys.atrest import FileMasterKeys
from keys.home import PartyHome
from keys.keyring import Keyring


@dataclass
class Gateway:
    """Everything a request needs, built once."""

    settings: Settings
    engine: Engine
    keyring: Keyring
    cipher: BucketCipher
    audit: AuditLog
    clock: Clock
    directory: Directory = field(default_factory=Directory)

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock | None = None) -> Gateway:
        """Connect to the store (migrating it) and load the gateway's keys."""
        engine = make_engine(settings.store_url)
        migrate(engine)
        return cls(
            settings=settings,
            engine=engine,
            keyring=PartyHome(settings.home).keyring(),
            cipher=BucketCipher(FileMasterKeys(settings.master_keys_dir)),
            audit=AuditLog(),
            clock=clock or SystemClock(),
        )

    def check(self, envelopes: Sequence[str | bytes], ctx: CheckContext) -> list[Checked | Refused]:
        """The checks that need no store, for a whole batch, in order."""
        return Checker(self.keyring.accepted("enc", now=ctx.now)).check_all(envelopes, ctx)

    def close(self) -> None:
        self.engine.dispose()


YOUNG_COLLECTION_THRESHOLD = 20_000
"""Allocations between two collections of the youngest generation (Python's default is
700): a batch of 500 notices makes tens of thousands of short-lived containers, nearly
all freed by reference counting, and at the default the collector ran 82 times in one
batch, every six notices."""

HEAP_KEPT_BYTES = 256 * 1024 * 1024
"""Free memory at the top of the heap that the process keeps instead of returning it to
the system (glibc's default is 128 kB, raised only as far as twice the largest block
freed)."""

# mallopt(3) parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_MALLOPT = {
    "MALLOC_ARENA_MAX": (_M_ARENA_MAX, 1),
    "MALLOC_TRIM_THRESHOLD_": (_M_TRIM_THRESHOLD, HEAP_KEPT_BYTES),
    # No block gets a mapping of its own, however large.
    "MALLOC_MMAP_MAX_": (_M_MMAP_MAX, 0),
}


def settle() -> None:
    """Tune the garbage collector and the C heap for a long-running process that has
    finished starting.

    A long-running process (a web worker, a batch helper) builds its modules, keys and
    caches once and keeps them; left in the collector's oldest generation they are
    scanned again at every full collection, which the intake's many short-lived objects
    trigger every few batches (about 3% of an intake's instructions): they are frozen.
    The youngest generation is collected less often (about 3% of an intake's time
    again, on batches of 500).

    The C heap keeps the memory a batch frees for the next one (``keep_heap``).
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, oldest)
    keep_heap()


def keep_heap() -> None:
    """Have glibc's allocator keep freed memory for reuse instead of handing it back.

    A batch allocates tens of megabytes (the request body, the envelopes, what opening
    them makes) and frees them at its end. By default glibc returns most of that to the
    system and every batch then touches fresh pages, which the kernel must fault in and
    zero: about a tenth of an intake worker's CPU went there. Each request runs in a
    pool thread that may get an allocator arena of its own, so memory freed in one
    batch was often not even reusable by the next. One arena, a high trim threshold and
    every block on the heap keep a worker's memory at its working set, allocated once.

    Every block, however large: glibc would map a block over 32 MB at the most on its
    own and unmap it when freed. orjson's working buffer for a batch's body is twelve
    times the body, 55 MB for 500 envelopes: mapped afresh for every batch, its pages
    faulted in again (1,133 faults), parsing took 5-6.5 ms against 2.6-3.7 ms from the
    heap.

    A setting given in the environment (``MALLOC_ARENA_MAX`` and the others, glibc's own
    names) is left as the operator set it. Does nothing on a C library without mallopt.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    for variable, (parameter, value) in _MALLOPT.items():
        if variable not in os.environ:
            mallopt(parameter, value)


# -- worker processes ------------------------------------------------------------------

_T = TypeVar("_T")

_WORKER: Gateway | None = None


_PR_SET_PDEATHSIG = 1
"""prctl(2): the signal this process gets when the thread that started it ends."""


def start_worker(home: str) -> None:
    """Start a worker process: a gateway of its own on ``home``, settled.

    Ctrl-C reaches the whole process group; a worker leaves it to its parent, which
    stops the workers once the work they hold is done. On Linux a worker also ends with
    its parent when that is killed outright: it holds both ends of its job queue and
    would otherwise wait for a next job for ever. A parent killed while the worker was
    still starting is caught too (the pool may be serving on the other workers by then).
    """
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        parent = multiprocessing.parent_process()
        if parent is not None and os.getppid() != parent.pid:
            signal.raise_signal(signal.SIGTERM)  # the parent ended before the line above
    _WORKER = Gateway.open(Settings.load(Path(home)))
    settle()


@contextmanager
def uncollected() -> Iterator[None]:
    """Run one batch in a worker process without the cyclic garbage collector.

    A batch keeps tens of thousands of containers alive until its end (the envelopes,
    their claims, the rows) and reference counting frees them all then; the collector's
    passes over them meanwhile find nothing to collect and cost 2-4% of the batch's
    CPU. Whatever a batch does leave in a cycle goes at the collector's next pass after
    it. The collector is the whole process's, so this is for a worker process, which
    runs one job at a time; a collector already off is left off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def worker_gateway() -> Gateway:
    """The gateway of this worker process (``start_worker``)."""
    if _WORKER is None:
        raise RuntimeError("not a worker process")
    return _WORKER


HANDS_FILES = hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir()
"""Whether a request body can cross to a worker process as a file (``BodyFile``)."""


@dataclass(frozen=True)
class HandedBody:
    """A request body that another process holds as a ``BodyFile``: where a worker
    finds it, and what it must find there."""

    pid: int
    fd: int
    inode: int
    size: int

    def read(self) -> bytes:
        """The body, read in the worker through the holder's ``/proc`` entry (a file
        opened there has its own offset). A descriptor that no longer leads to the
        same file raises ``OSError``."""
        with open(f"/proc/{self.pid}/fd/{self.fd}", "rb", buffering=0) as file:
            if os.fstat(file.fileno()).st_ino != self.inode:
                raise OSError(f"descriptor {self.fd} of process {self.pid} was reused")
            body = file.readall()
        if len(body) != self.size:
            raise OSError(f"the body has {len(body)} of {self.size} bytes")
        return body


class BodyFile:
    """A request body written as it arrives to an anonymous file in memory, so that a
    worker process reads it straight from there.

    Through the pool's pipe a batch's 4.6 MB crossed pickled, in 64 kB pieces, each a
    wake-up of both processes: 3-4.6 ms of CPU in the request's process and 7-7.5 ms in
    the worker per batch, 11 ms from submitting to the worker holding it. Through a file
    in memory: 1.7-2 ms, 1 ms and 3 ms. Close it once the worker is done with it (not
    when the request ends: a job may still start after its request was abandoned).
    """

    def __init__(self) -> None:
        self._fd = os.memfd_create("signaalpoort-body", os.MFD_CLOEXEC)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view) :]
        self.size += len(chunk)

    def handed(self) -> HandedBody:
        """What a worker needs to read the body; the file stays open until ``close``."""
        return HandedBody(os.getpid(), self._fd, os.fstat(self._fd).st_ino, self.size)

    def close(self) -> None:
        os.close(self._fd)


class WorkerPool:
    """Worker processes on one gateway home, for work that is mostly cryptography.

    Each job goes to whichever process comes free first, so the load spreads evenly
    whatever connection a request came in on. A process that dies takes the jobs it
    held with it (their transactions roll back); the pool then starts afresh at the
    next job instead of refusing every job after.
    """

    def __init__(self, home: Path, workers: int) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self._home = str(home)
        self._workers = workers
        self._lock = threading.Lock()
        self._executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(self._home,),
        )

    def start(self) -> None:
        """Start the workers now, and wait for the first to hold its gateway: a home that
        does not open fails here, not at the first job."""
        for future in [self.submit(os.getpid) for _ in range(self._workers)]:
            future.result()

    def submit(self, fn: Callable[..., _T], /, *args: Any) -> Future[_T]:
        """Run ``fn(*args)`` in a worker; ``fn`` and its arguments must cross processes."""
        with self._lock:
            try:
                return self._executor.submit(fn, *args)
            except BrokenProcessPool:
                # A worker died: the jobs it held have failed, this one has not started.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new()
                return self._executor.submit(fn, *args)

    def close(self) -> None:
        """Let the workers finish the jobs they hold, then stop them."""
        with self._lock:
            self._executor.shutdown(wait=True)
