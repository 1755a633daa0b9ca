"""``lifecycle.listing``: synthetic bucket listings and the outcomes files decide."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pollable.handlers.captain.listing import (
    CORRUPT_MARKER,
    DENIED_SUFFIX,
    NATURAL_SIZE,
    FileEntry,
    denied,
    extension,
    list_location,
    single_file,
    text_pages,
    work_for,
)
from pollable.lifecycle.model import Outcome, Stage

PROPERTY = settings(max_examples=60, deadline=None, database=None)
BASE = "s3://acme-docs/"

prefixes = st.sampled_from(["", "reports", "/reports/", "a/b/c", "2024/q1/"])
seeds = st.text(max_size=12)


@PROPERTY
@given(prefixes, st.none() | st.integers(0, 300), seeds)
def test_listing_is_deterministic_and_sorted(prefix, max_files, seed):
    files = list_location(BASE, prefix, max_files, seed)
    assert files == list_location(BASE, prefix, max_files, seed)
    uris = [f.uri for f in files]
    assert uris == sorted(uris)
    assert len(set(uris)) == len(uris)


@PROPERTY
@given(prefixes, st.integers(0, 300), seeds)
def test_listing_has_exactly_max_files(prefix, max_files, seed):
    assert len(list_location(BASE, prefix, max_files, seed)) == max_files


@PROPERTY
@given(prefixes, seeds)
def test_natural_listing_size(prefix, seed):
    low, high = NATURAL_SIZE
    assert low <= len(list_location(BASE, prefix, None, seed)) <= high


def test_natural_sizes_vary_between_buckets():
    sizes = {len(list_location(f"s3://bucket-{i}/", "", None, "seed")) for i in range(20)}
    assert len(sizes) > 5


@PROPERTY
@given(prefixes, st.integers(1, 100), seeds)
def test_listing_respects_the_prefix(prefix, max_files, seed):
    files = list_location(BASE, prefix, max_files, seed)
    clean = prefix.strip("/")
    start = f"{BASE}{clean}/" if clean else BASE
    for f in files:
        assert f.uri.startswith(start)
        assert "//" not in f.uri.removeprefix("s3://")
        assert f.pages >= 0
        pages_zero = extension(f.uri) in {"zip", "bin"}
        assert (f.pages == 0) == pages_zero


def test_listing_depends_on_seed_base_and_prefix():
    first = list_location(BASE, "x", 30, "seed")
    assert list_location(BASE, "x", 30, "other") != first
    assert list_location("s3://other/", "x", 30, "seed") != first
    assert list_location(BASE, "y", 30, "seed") != first


def test_listing_has_a_mix_of_types():
    files = list_location(BASE, "", 250, "mix")
    assert len({extension(f.uri) for f in files}) >= 6


def test_single_file_is_deterministic():
    uri = "gs://bucket/finance/report.pdf"
    entry = single_file(uri, "seed")
    assert entry == single_file(uri, "seed")
    assert entry.uri == uri and 1 <= entry.pages <= 40
    assert single_file("gs://bucket/archive.zip", "seed").pages == 0
    assert 1 <= single_file("gs://bucket/notes.weird", "seed").pages <= 10


@pytest.mark.parametrize(
    ("content", "pages"), [("", 1), ("x", 1), ("x" * 3000, 1), ("x" * 3001, 2), ("x" * 9000, 3)]
)
def test_text_pages(content, pages):
    assert text_pages(content) == pages


@pytest.mark.parametrize(
    ("uri", "ext"),
    [
        ("s3://b/report.PDF", "pdf"),
        ("https://host/file.docx?sig=a.b.c", "docx"),
        ("https://host/file.txt#part.2", "txt"),
        ("s3://b/archive.tar.gz", "gz"),
        ("s3://b/README", ""),
        ("s3://bucket.with.dots/README", ""),
    ],
)
def test_extension(uri, ext):
    assert extension(uri) == ext


def test_denied_buckets():
    failure = denied("acme" + DENIED_SUFFIX)
    assert failure is not None
    assert failure.stage is Stage.SCANNING
    assert failure.code == "bucket_access_denied"
    assert "acme-denied" in failure.message
    assert denied("acme") is None
    assert denied("denied-acme") is None
    assert denied("acme-denied-not") is None


def test_work_for_a_plain_file():
    work = work_for(FileEntry("s3://b/finance/report-000001.pdf", 12), already_indexed=False)
    assert (work.key, work.units, work.forced) == ("s3://b/finance/report-000001.pdf", 12, None)
    assert work.error_code is None and work.fail_stage is None


def test_work_for_an_already_indexed_file_is_skipped_first():
    entry = FileEntry("s3://b/corrupt-scan.zip", 0)
    work = work_for(entry, already_indexed=True)
    assert (work.forced, work.error_code) == (Outcome.SKIPPED, "already_indexed")
    assert work.units == 0
    work = work_for(FileEntry("s3://b/a.pdf", 9), already_indexed=True)
    assert (work.forced, work.units, work.error_code) == (Outcome.SKIPPED, 9, "already_indexed")
    assert work.error_message


@pytest.mark.parametrize("ext", ["zip", "bin", "exe", "ZIP"])
def test_work_for_an_unsupported_type_is_skipped(ext):
    work = work_for(FileEntry(f"s3://b/corrupt-thing.{ext}", 5), already_indexed=False)
    assert (work.forced, work.units, work.error_code) == (
        Outcome.SKIPPED, 0, "unsupported_file_type",
    )  # fmt: skip
    assert f".{ext.lower()}" in (work.error_message or "")


@pytest.mark.parametrize(
    "uri", ["s3://b/corrupt.pdf", "s3://b/x/Report-CORRUPT-1.docx", "s3://b/corrupted.txt"]
)
def test_work_for_a_corrupt_file_fails_in_extracting(uri):
    work = work_for(FileEntry(uri, 7), already_indexed=False)
    assert (work.forced, work.fail_stage, work.error_code) == (
        Outcome.FAILED, Stage.EXTRACTING, "file_corrupt",
    )  # fmt: skip
    assert work.units == 7 and work.error_message


def test_corrupt_marker_only_counts_in_the_file_name():
    work = work_for(FileEntry(f"s3://b/{CORRUPT_MARKER}/fine.pdf", 3), already_indexed=False)
    assert work.forced is None


def test_files_without_an_extension_are_processed():
    assert work_for(FileEntry("s3://b/README", 1), already_indexed=False).forced is None


def test_listed_files_all_map_to_work():
    for entry in list_location(BASE, "", 250, "mix"):
        work = work_for(entry, already_indexed=False)
        assert work.key == entry.uri
        if extension(entry.uri) in {"zip", "bin"}:
            assert work.forced is Outcome.SKIPPED
        else:
            assert work.forced is None and work.units == entry.pages
