from __future__ import annotations

import dataclasses
import hashlib

import pytest

from mirror.catalog.models import CheckOutcome
from mirror.errors import StoreError
from mirror.validate.checks.integrity import IntegrityCheck, hash_file

from .builders import good_tar_bz2


def test_integrity_corpus_pass(corpus_context):
    context = corpus_context("channels/conda-format-repo/linux-64/zlib-1.2.11-h7b6447c_3.tar.bz2")

    result = IntegrityCheck().run(context)

    assert result.outcome is CheckOutcome.PASS
    assert result.evidence["compared"] == ["md5", "sha256", "size"]
    assert result.evidence["file"]["sha256"] == context.record["sha256"]


def test_integrity_sha256_mismatch(tmp_path):
    context = good_tar_bz2(tmp_path)
    wrong = "9b73eb4e3197eccb485250709c6f4782a83a8688d5b8251a212251c451d9b9ad"
    context = dataclasses.replace(context, record={**context.record, "sha256": wrong})

    result = IntegrityCheck().run(context)

    actual = hashlib.sha256(context.path.read_bytes()).hexdigest()
    assert result.outcome is CheckOutcome.FAIL
    assert result.summary == f"sha256 mismatch: record {wrong[:12]}…, file {actual[:12]}…"
    assert result.evidence["mismatches"] == {"sha256": {"record": wrong, "file": actual}}


def test_integrity_size_and_md5_mismatch(tmp_path):
    context = good_tar_bz2(tmp_path)
    actual_size = context.path.stat().st_size
    record = {**context.record, "size": actual_size + 1, "md5": "0" * 32}
    context = dataclasses.replace(context, record=record)

    result = IntegrityCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert f"size mismatch: record {actual_size + 1}, file {actual_size}" in result.summary
    assert "md5 mismatch: record 000000000000…" in result.summary
    assert "sha256" not in result.evidence["mismatches"]


def test_integrity_md5_only_record(tmp_path):
    context = good_tar_bz2(tmp_path)
    record = {key: value for key, value in context.record.items() if key != "sha256"}
    context = dataclasses.replace(context, record=record)

    result = IntegrityCheck().run(context)

    assert result.outcome is CheckOutcome.PASS
    assert result.evidence["compared"] == ["md5", "size"]


def test_integrity_uppercase_hash_accepted(tmp_path):
    context = good_tar_bz2(tmp_path)
    context = dataclasses.replace(context, record={**context.record, "sha256": context.record["sha256"].upper()})

    assert IntegrityCheck().run(context).outcome is CheckOutcome.PASS


def test_integrity_record_without_hashes(tmp_path):
    context = good_tar_bz2(tmp_path)
    record = {key: value for key, value in context.record.items() if key not in ("sha256", "md5")}
    context = dataclasses.replace(context, record=record)

    result = IntegrityCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "neither sha256 nor md5" in result.summary


@pytest.mark.parametrize(
    ("field", "value"),
    [("sha256", "not-a-hash"), ("md5", 12), ("size", "122456"), ("size", True), ("size", -1)],
    ids=["sha256-text", "md5-int", "size-text", "size-bool", "size-negative"],
)
def test_integrity_invalid_record_value(tmp_path, field, value):
    context = good_tar_bz2(tmp_path)
    context = dataclasses.replace(context, record={**context.record, field: value})

    result = IntegrityCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.summary == f"upstream record has invalid values: {field} {value!r}"


def test_integrity_small_chunks_same_hash(tmp_path):
    context = good_tar_bz2(tmp_path)

    assert hash_file(context.path, chunk_size=7) == hash_file(context.path)


def test_integrity_missing_blob_raises_store_error(tmp_path):
    context = good_tar_bz2(tmp_path)
    context.path.unlink()

    with pytest.raises(StoreError, match="could not read blob"):
        IntegrityCheck().run(context)


def test_integrity_rejects_zero_chunk_size():
    with pytest.raises(ValueError, match="chunk_size"):
        IntegrityCheck(chunk_size=0)
