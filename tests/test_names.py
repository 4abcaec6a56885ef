"""Names from a store or a user are checked before they become paths (issue 27)."""
import pytest

from sri.names import UnsafeName, check_name, is_safe_name
from sri.sweep.cli import main as sweep_cli


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".hidden", "", "x/../../y", "a\nb", None, 3])
def test_unsafe_names_are_refused(bad):
    assert not is_safe_name(bad)
    with pytest.raises(UnsafeName, match="cannot be used in a file name"):
        check_name(bad, "dataset")


@pytest.mark.parametrize("good", ["blocks", "sri_g", "t3-smoke-1a2b", "seed0", "v1.2"])
def test_plain_names_pass(good):
    assert check_name(good, "row") == good


def test_sweep_id_with_dot_dot_writes_nothing_outside_the_store(tmp_path, capsys):
    store = tmp_path / "store" / "runs"
    code = sweep_cli(["3", "--preset", "smoke", "--rows", "d", "--store", str(store), "--sweep", "../../x",
                      "--dry-run"])
    assert code == 2 and "--sweep '../../x' cannot be used in a file name" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
