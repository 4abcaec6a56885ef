"""Shared test fixtures: caches in a temporary folder (not ~/.cache), single-threaded tiny models."""
import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _isolated_caches(tmp_path_factory):
    # subprocesses (experiment scripts, `sri evaluate`) inherit the environment
    old = os.environ.get("SRI_FID_CACHE")
    os.environ["SRI_FID_CACHE"] = str(tmp_path_factory.mktemp("fid_cache"))
    # no test downloads the 100 MB Inception weights (test_fid_download serves its own file)
    offline = os.environ.get("SRI_OFFLINE")
    os.environ["SRI_OFFLINE"] = "1"
    yield
    if offline is None:
        os.environ.pop("SRI_OFFLINE", None)
    else:
        os.environ["SRI_OFFLINE"] = offline
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


# Skips that are by design even in CI (everything else that skips there means a tool .ci/run
# should have installed is missing, or a test silently stopped running).
CI_ALLOWED_SKIPS = ("the fast mode",)
_ci_skips: list[tuple[str, str]] = []


def pytest_runtest_logreport(report):
    if report.skipped and os.environ.get("SRI_CI") == "1":
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(a in reason for a in CI_ALLOWED_SKIPS):
            _ci_skips.append((report.nodeid, reason))


def pytest_sessionfinish(session, exitstatus):
    if _ci_skips and os.environ.get("SRI_CI") == "1":
        lines = "\n".join(f"  {node}: {why}" for node, why in _ci_skips)
        print(f"\nSRI_CI=1: {len(_ci_skips)} test(s) skipped that CI expects to run:\n{lines}")
        session.exitstatus = 1
