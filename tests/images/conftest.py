"""The images, built by scripts/images.sh from the current sources (cached per content); every test here skips,
with the reason printed, where no Docker daemon can run them."""

from __future__ import annotations

import pytest

from tests.support.docker import DockerUnavailable, Images, images


@pytest.fixture(scope="session")
def built() -> Images:
    try:
        return images()
    except DockerUnavailable as exc:
        pytest.skip(f"the images cannot be built or run here: {exc}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "images: builds and runs anchor's container images with Docker")
