"""Shared test fixtures: caches in a temporary folder (not ~/.cache), single-threaded tiny models."""
import os
import signal

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


_STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGUSR2") if hasattr(signal, n))


@pytest.fixture(autouse=True)
def _signal_handlers_restored(request):
    """A test that leaves a signal ignored or handled leaks it into every later test and every child
    process they start (a SIGINT left ignored made a server deaf to Ctrl-C in full runs): restore
    the handlers and fail the test that changed them."""
    before = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
    yield
    changed = {signal.Signals(s).name: (before[s], signal.getsignal(s)) for s in _STOP_SIGNALS
               if signal.getsignal(s) != before[s]}
    for name, (old, _) in changed.items():
        signal.signal(getattr(signal, name), old)
    if changed:
        pytest.fail(f"{request.node.nodeid} left signal handlers changed: " + ", ".join(
            f"{name}: {old!r} -> {new!r}" for name, (old, new) in changed.items()), pytrace=False)


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
