"""The SFTP drop folders: where creditors' batch files arrive and receipts go back.

    GATEWAY_HOME/sftp/<creditor OIN>/inbox/      uploads (the creditor writes)
    GATEWAY_HOME/sftp/<creditor OIN>/receipts/   NAME.jsonl.receipt.jws (the creditor reads)

A creditor uploads ``NAME.jsonl`` under the temporary name ``.NAME.jsonl.part`` and
renames it to ``NAME.jsonl`` once it is complete. Only complete uploads
(``is_complete_upload``) are the processor's to take; a temporary upload never is.
Names are one path component of ASCII letters, digits, ``.``, ``_`` and ``-``, so a name
is safe to use as a file name, in a receipt and in the audit log.

Both the SFTP server (``gateway.sftp``) and the batch processor (``gateway.batch``)
import the layout from here.

In production the drop folders may instead be written by OpenSSH's ``internal-sftp``
(``sftp_mode = "openssh"``, docs/deploy-sftp.md): one OS user per creditor, chrooted to a
folder of its own that holds the same ``inbox/`` and ``receipts/``; the settings'
``openssh_dropboxes`` name each creditor's folder. ``dropboxes`` gives the processor
the folders of either mode.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.settings import Settings

SFTP_DIR = "sftp"
INBOX = "inbox"
RECEIPTS = "receipts"
BATCH_SUFFIX = ".jsonl"
PART_SUFFIX = ".part"
RECEIPT_SUFFIX = ".receipt.jws"
MAX_NAME_CHARS = 200
"""The longest upload name, temporary prefix and suffix included (file systems allow 255)."""

_OIN = re.compile(r"[0-9]{20}")
_COMPLETE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\.jsonl")


def is_oin(value: str) -> bool:
    """Whether ``value`` is a 20-digit OIN (the SFTP user name of a creditor)."""
    return _OIN.fullmatch(value) is not None


def is_complete_upload(name: str) -> bool:
    """Whether ``name`` is a complete batch file: ``NAME.jsonl``, not starting with "."."""
    return len(name) <= MAX_NAME_CHARS and _COMPLETE.fullmatch(name) is not None


def is_temporary_upload(name: str) -> bool:
    """Whether ``name`` is an upload in progress: ``.NAME.jsonl.part``."""
    return (
        len(name) <= MAX_NAME_CHARS
        and name.startswith(".")
        and name.endswith(PART_SUFFIX)
        and is_complete_upload(name[1 : -len(PART_SUFFIX)])
    )


def temporary_name(name: str) -> str:
    """The name to upload the complete batch file ``name`` under: ``.NAME.part``."""
    if not is_complete_upload(name):
        raise ValueError("not a batch file name (NAME.jsonl)")
    return f".{name}{PART_SUFFIX}"


def receipt_name(name: str) -> str:
    """The receipt of the batch file ``name``: ``NAME.receipt.jws``."""
    return name + RECEIPT_SUFFIX


def sftp_root(home: Path) -> Path:
    """The folder that holds every creditor's drop folder."""
    return home / SFTP_DIR


def creditor_root(home: Path, oin: str) -> Path:
    """A creditor's own folder: the root it sees over SFTP."""
    if not is_oin(oin):
        raise ValueError("a creditor's folder is named by its 20-digit OIN")
    return sftp_root(home) / oin


def inbox_dir(home: Path, oin: str) -> Path:
    """Where a creditor's uploads arrive."""
    return creditor_root(home, oin) / INBOX


def receipts_dir(home: Path, oin: str) -> Path:
    """Where a creditor's receipts are written for it to fetch."""
    return creditor_root(home, oin) / RECEIPTS


def receipt_path(home: Path, oin: str, name: str) -> Path:
    """The receipt file of the batch file ``name`` of a creditor."""
    return receipts_dir(home, oin) / receipt_name(name)


def ensure_dropbox(home: Path, oin: str) -> Path:
    """Create a creditor's inbox and receipts folders (mode 0700); return its root."""
    root = creditor_root(home, oin)
    for folder in (sftp_root(home), root, root / INBOX, root / RECEIPTS):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    return root


def creditors(home: Path) -> list[str]:
    """The OINs that have a drop folder, in order."""
    root = sftp_root(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if is_oin(p.name) and p.is_dir())


@dataclass(frozen=True)
class DropBox:
    """Where one creditor's uploads arrive and where its receipts go back."""

    inbox: Path
    receipts: Path


def dropboxes(settings: Settings) -> dict[str, DropBox]:
    """Every creditor's drop folder by OIN, in order: the embedded layout in the home,
    or the OpenSSH chroot folders the settings name."""
    if settings.sftp_mode == "openssh":
        return openssh_dropboxes(settings.openssh_dropboxes)
    home = settings.home
    return {oin: DropBox(inbox_dir(home, oin), receipts_dir(home, oin)) for oin in creditors(home)}


def openssh_dropboxes(chroots: Mapping[str, Path]) -> dict[str, DropBox]:
    """The drop folders in the OpenSSH chroot folders ``chroots`` (OIN -> folder)."""
    return {oin: DropBox(chroots[oin] / INBOX, chroots[oin] / RECEIPTS) for oin in sorted(chroots)}


def check_openssh(settings: Settings) -> list[str]:
    """What is wrong with the OpenSSH drop folders, for ``serve`` to refuse to start.

    Each chroot folder holds ``inbox/`` and ``receipts/``, real folders and not links;
    ``receipts/`` is writable by no one but its owner (the creditor only reads it); and
    the gateway's home is on the same file system, since judged uploads are renamed
    out of the inbox into it.
    """
    problems = []
    home = os.stat(settings.home)
    for oin, box in openssh_dropboxes(settings.openssh_dropboxes).items():
        for folder in (box.inbox, box.receipts):
            try:
                st = os.lstat(folder)
            except OSError as exc:
                problems.append(f"{oin}: {folder}: {exc.strerror}")
                continue
            if not stat.S_ISDIR(st.st_mode):
                problems.append(f"{oin}: {folder} is not a folder (a link is not followed)")
            elif folder == box.receipts and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                problems.append(f"{oin}: {folder} is group- or world-writable")
            elif st.st_dev != home.st_dev:
                problems.append(f"{oin}: {folder} is not on the file system of {settings.home}")
    return problems


def complete_uploads(home: Path, oin: str) -> list[Path]:
    """A creditor's complete uploads waiting in its inbox (regular files only), by name."""
    return uploads_in(inbox_dir(home, oin))


def uploads_in(inbox: Path) -> list[Path]:
    """The complete uploads waiting in ``inbox`` (regular files only, never a link), by
    name."""
    if not inbox.is_dir():
        return []
    return sorted(
        inbox / entry.name
        for entry in os.scandir(inbox)
        if is_complete_upload(entry.name) and entry.is_file(follow_symlinks=False)
    )
