"""Shared test fixtures: caches in a temporary folder (not ~/.cache), single-threaded tiny models."""
import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _isolated_caches(tmp_path_factory):
    # subprocesses (experiment scripts, `sri evaluate`) inherit the environment
    old = os.environ.get("SRI_FID_CACHE")
    os.environ["SRI_FID_CACHE"] = str(tmp_path_factory.mktemp("fid_cache"))
    yield
    if old is None:
        os.environ.pop("SRI_FID_CACHE", None)
    else:
        os.environ["SRI_FID_CACHE"] = old


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors on a shared 2-core machine: one torch thread avoids OpenMP contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def skip_or_fail():
    """`skip_or_fail(reason)`: skip a test whose external tool is missing, except in CI
    (`SRI_CI=1`, set by .ci/run, which installs every such tool), where that is a failure."""
    def missing(reason: str) -> None:
        if os.environ.get("SRI_CI") == "1":
            pytest.fail(f"{reason}; .ci/run should have installed it")
        pytest.skip(reason)

    return missing
