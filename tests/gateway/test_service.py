"""A settled process keeps the memory a batch frees for the next batch; a batch runs without
the cyclic collector; a pool of worker processes each holds a gateway of its own and
outlives a worker that dies."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.service import (
    HANDS_FILES,
    BodyFile,
    HandedBody,
    WorkerPool,
    uncollected,
    worker_gateway,
)
from signaalpoort import init_demo

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter: touch and free a block (a large request body, a parser's working
# buffer), and print how much of it left the resident set.
RETURNED = """
import os, sys
from gateway.service import keep_heap

if sys.argv[1] == "settled":
    keep_heap()
page = os.sysconf("SC_PAGE_SIZE")

def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

block = b"x" * int(sys.argv[2])
before = resident()
del block
print(before - resident())
"""

MB = 1024 * 1024


def returned(mode: str, size: int = 20 * MB, **env: str) -> int:
    """How much of a block of ``size`` bytes, touched and freed, left the resident set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", RETURNED, mode, str(size)],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not Path("/proc/self/statm").exists(),
    reason="glibc's allocator on Linux",
)


@glibc
def test_freed_memory_stays_with_a_settled_process() -> None:
    assert returned("settled") < MB


@glibc
def test_even_a_block_larger_than_glibc_would_keep_on_the_heap_stays() -> None:
    assert returned("settled", 64 * MB) < MB


@glibc
def test_an_unsettled_process_hands_freed_memory_back() -> None:
    # What keep_heap changes: by default glibc maps a block this large on its own and
    # unmaps it when it is freed.
    assert returned("plain") > 15 * MB


@glibc
def test_the_operators_allocator_settings_are_left_as_they_are() -> None:
    small = str(128 * 1024)
    assert returned("settled", MALLOC_MMAP_MAX_="65536", MALLOC_TRIM_THRESHOLD_=small) > 15 * MB


# -- the collector during a batch ---------------------------------------------------------


@pytest.fixture
def collector_on() -> Iterator[None]:
    """The collector on for the test, and as it was after it."""
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector_on")
def test_a_batch_runs_without_the_collector_which_is_back_after_it() -> None:
    with uncollected():
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_the_collector_is_back_after_a_batch_that_failed() -> None:
    with pytest.raises(ValueError, match="refused"), uncollected():
        raise ValueError("refused")
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with uncollected():
        assert not gc.isenabled()
    assert not gc.isenabled()


# -- the worker pool -----------------------------------------------------------------------


def where() -> tuple[int, str]:
    """In a worker: its process id and the home of its gateway."""
    return os.getpid(), str(worker_gateway().settings.home)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkerPool, Path]]:
    demo = tmp_path_factory.mktemp("pool") / "demo"
    init_demo(demo, now=datetime.now(UTC))
    workers = WorkerPool(demo / "gateway", 2)
    workers.start()
    try:
        yield workers, demo / "gateway"
    finally:
        workers.close()


def test_jobs_run_in_other_processes_each_with_a_gateway_on_the_home(
    pool: tuple[WorkerPool, Path],
) -> None:
    workers, home = pool
    pid, worker_home = workers.submit(where).result(timeout=60)
    assert pid != os.getpid()
    assert worker_home == str(home)


def test_the_pool_starts_afresh_after_a_worker_died_in_a_job(
    pool: tuple[WorkerPool, Path],
) -> None:
    workers, home = pool
    with pytest.raises(BrokenProcessPool):
        workers.submit(os._exit, 3).result(timeout=60)
    pid, worker_home = workers.submit(where).result(timeout=60)
    assert (pid != os.getpid(), worker_home) == (True, str(home))


def test_starting_a_pool_on_a_home_that_does_not_open_fails_at_once(tmp_path: Path) -> None:
    workers = WorkerPool(tmp_path / "no-such-home", 1)
    try:
        with pytest.raises(BrokenProcessPool):
            workers.start()
    finally:
        workers.close()


def test_this_process_is_no_worker() -> None:
    with pytest.raises(RuntimeError):
        worker_gateway()


def test_a_pool_needs_a_worker(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        WorkerPool(tmp_path, 0)


# -- request bodies handed to the workers ------------------------------------------------

hands_files = pytest.mark.skipif(not HANDS_FILES, reason="memfd_create and /proc")


def closed_body(content: bytes) -> HandedBody:
    """What a worker was told of a body whose file has since been closed."""
    body = BodyFile()
    body.write(content)
    handed = body.handed()
    body.close()
    return handed


@hands_files
def test_a_worker_reads_the_body_the_request_process_wrote(
    pool: tuple[WorkerPool, Path],
) -> None:
    workers, _ = pool
    chunks = [os.urandom(65_536), b"", os.urandom(1_000_003)]
    body = BodyFile()
    try:
        for chunk in chunks:
            body.write(chunk)
        handed = body.handed()
        assert handed.size == sum(map(len, chunks))
        assert workers.submit(HandedBody.read, handed).result(timeout=60) == b"".join(chunks)
    finally:
        body.close()


@hands_files
def test_a_body_is_gone_once_its_file_is_closed() -> None:
    handed = closed_body(b"envelopes")
    with pytest.raises(OSError):
        handed.read()


@hands_files
def test_a_descriptor_reused_for_another_file_is_not_read_as_the_body() -> None:
    handed = closed_body(b"the first creditor's batch")
    other = BodyFile()
    try:
        other.write(b"the second creditor's batch")
        assert other.handed().fd == handed.fd  # the lowest free descriptor is reused
        with pytest.raises(OSError, match="reused"):
            handed.read()
    finally:
        other.close()
