"""A settled process keeps the memory a batch frees for the next batch."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter: touch and free a 20 MB block, like a large request body, and
# print how much of it left the resident set.
RETURNED = """
import os, sys
from gateway.service import keep_heap

if sys.argv[1] == "settled":
    keep_heap()
page = os.sysconf("SC_PAGE_SIZE")

def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

block = b"x" * (20 * 1024 * 1024)
before = resident()
del block
print(before - resident())
"""

MB = 1024 * 1024


def returned(mode: str, **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", RETURNED, mode],
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
def test_an_unsettled_process_hands_freed_memory_back() -> None:
    # What keep_heap changes: by default glibc maps a block this large on its own and
    # unmaps it when it is freed.
    assert returned("plain") > 15 * MB


@glibc
def test_the_operators_allocator_settings_are_left_as_they_are() -> None:
    small = str(128 * 1024)
    assert returned("settled", MALLOC_MMAP_THRESHOLD_=small, MALLOC_TRIM_THRESHOLD_=small) > 15 * MB
