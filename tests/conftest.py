"""Fixtures shared by every test layer: the real MinIO server (built once per machine by scripts/test-tools.sh)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.minio_server import MinioServer, running_minio


@pytest.fixture(scope="session")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    with running_minio(tmp_path_factory.mktemp("minio")) as server:
        yield server
