"""Synthetic storage listings: what a bucket "contains", without any network.

A listing is a pure function of (location, prefix, max_files, seed): the same bucket always
lists the same files, with a realistic mix of types, sizes and page counts.
"""

from __future__ import annotations

import math
import posixpath
import random
from dataclasses import dataclass

from pollable.lifecycle.model import Failure, Outcome, Stage
from pollable.lifecycle.planner import Work

#: (extension, weight, min pages, max pages); weight 0 pages means "not indexable".
_TYPES: tuple[tuple[str, int, int, int], ...] = (
    ("pdf", 30, 1, 40),
    ("docx", 14, 1, 20),
    ("xlsx", 8, 1, 6),
    ("pptx", 7, 5, 30),
    ("csv", 8, 1, 1),
    ("txt", 10, 1, 1),
    ("md", 8, 1, 1),
    ("json", 4, 1, 1),
    ("png", 4, 1, 1),
    ("jpg", 4, 1, 1),
    ("zip", 1, 0, 0),
    ("bin", 1, 0, 0),
)
_SUPPORTED = {ext for ext, _, _, high in _TYPES if high}
_FOLDERS = ("finance", "legal", "engineering", "people", "sales", "research", "ops", "marketing")
_WORDS = (
    "report",
    "invoice",
    "contract",
    "summary",
    "minutes",
    "design",
    "policy",
    "handbook",
    "roadmap",
    "budget",
    "proposal",
    "memo",
    "notes",
    "spec",
    "faq",
    "review",
)

#: Listing size when the request sets no ``max_files``.
NATURAL_SIZE = (5, 250)

DENIED_SUFFIX = "-denied"
CORRUPT_MARKER = "corrupt"


@dataclass(frozen=True)
class FileEntry:
    uri: str
    pages: int


def _pages(rng: random.Random, ext: str) -> int:
    for name, _, low, high in _TYPES:
        if name == ext:
            return rng.randint(low, high) if high else 0
    return rng.randint(1, 10)


def list_location(base: str, prefix: str, max_files: int | None, seed: str) -> list[FileEntry]:
    """The files under ``base`` + ``prefix`` (``base`` like ``s3://bucket/``), sorted by URI."""
    rng = random.Random(f"{seed}|{base}|{prefix}")
    count = max_files if max_files is not None else rng.randint(*NATURAL_SIZE)
    exts = [ext for ext, _, _, _ in _TYPES]
    weights = [weight for _, weight, _, _ in _TYPES]
    prefix = prefix.strip("/")
    files = []
    for i in range(count):
        ext = rng.choices(exts, weights)[0]
        folder = _FOLDERS[rng.randrange(len(_FOLDERS))]
        word = _WORDS[rng.randrange(len(_WORDS))]
        name = f"{folder}/{2019 + i % 7}/{word}-{i:06d}.{ext}"
        path = f"{prefix}/{name}" if prefix else name
        files.append(FileEntry(base + path, _pages(rng, ext)))
    files.sort(key=lambda f: f.uri)
    return files


def single_file(uri: str, seed: str) -> FileEntry:
    ext = extension(uri)
    return FileEntry(uri, _pages(random.Random(f"{seed}|{uri}"), ext))


def text_pages(content: str) -> int:
    """Plain text is billed by the page of about 3,000 characters."""
    return max(1, math.ceil(len(content) / 3000))


def extension(uri: str) -> str:
    path = uri.split("?", 1)[0].split("#", 1)[0]
    return posixpath.splitext(path)[1].lstrip(".").lower()


def denied(container: str) -> Failure | None:
    """A bucket or container whose name ends in ``-denied`` cannot be listed."""
    if not container.endswith(DENIED_SUFFIX):
        return None
    return Failure(
        Stage.SCANNING,
        "bucket_access_denied",
        f"Access denied while listing '{container}': the credentials lack list/read permission",
    )


def work_for(entry: FileEntry, already_indexed: bool) -> Work:
    """The work item for one file, with the outcomes the file itself decides."""
    name = entry.uri.rsplit("/", 1)[-1]
    if already_indexed:
        return Work(
            entry.uri,
            entry.pages,
            Outcome.SKIPPED,
            None,
            "already_indexed",
            "Skipped: the file is already indexed in this collection",
        )
    ext = extension(entry.uri)
    if ext and ext not in _SUPPORTED:
        return Work(
            entry.uri,
            0,
            Outcome.SKIPPED,
            None,
            "unsupported_file_type",
            f"Skipped: .{ext} files are not supported",
        )
    if CORRUPT_MARKER in name.lower():
        return Work(
            entry.uri,
            entry.pages,
            Outcome.FAILED,
            Stage.EXTRACTING,
            "file_corrupt",
            "The file is corrupt and could not be parsed",
        )
    return Work(entry.uri, entry.pages)
