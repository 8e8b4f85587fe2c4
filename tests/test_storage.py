"""The S3 filesystem as the runner ships it to Ray workers: each unpickled copy lists the store afresh."""

from __future__ import annotations

import pickle

from lakelabel.jobs.lake.storage import filesystem
from lakelabel.jobs.spec import StorageSpec


def test_each_unpickled_s3_filesystem_has_its_own_listing_cache() -> None:
    fs, _ = filesystem("s3://bucket/out", StorageSpec(endpoint_url="http://127.0.0.1:9"))
    first, second = pickle.loads(pickle.dumps(fs)), pickle.loads(pickle.dumps(fs))  # two tasks in one worker
    assert first is not second
    first.dircache["bucket/out/_lakelabel/staging/part-00"] = [{"name": "bucket/out/old.arrow", "size": 1}]
    assert "bucket/out/_lakelabel/staging/part-00" not in second.dircache
    assert (second.endpoint_url, second.retry_seconds) == (fs.endpoint_url, fs.retry_seconds)
