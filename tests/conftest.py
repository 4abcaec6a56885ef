"""Session-wide test isolation: caches the suite writes go to a temporary folder, not ~/.cache."""
import os

import pytest


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
