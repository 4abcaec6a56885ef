"""`python -m sri.bench unfinished`: an unfinished learning run kept small and continued elsewhere."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch

from sri.bench.learn import main as learn_main
from sri.bench.unfinished import git_ignored, keep, main, restore
from sri.checkpoint import load_checkpoint


def _learn(out, steps, *extra):
    return learn_main(["--model", "genv2", "--preset", "smoke", "--eval-every", "2", "--eval-num", "8",
                       "--num-samples", "4", "--steps", str(steps), "--minutes", "0", "--out", str(out), *extra])


def test_a_kept_run_continues_on_another_machine(tmp_path):
    """keep -> delete the run -> restore into a new folder -> --resume: the run goes on from the
    kept step (fp16 weights, bf16 moments, GECO and goal-schedule state) and its curve joins."""
    first = tmp_path / "first"
    assert _learn(first, 4) == 0
    weights, curve = keep(first, tmp_path / "kept" / "genv2_seed0")
    ck = load_checkpoint(weights)
    assert ck["step"] == 4 and {"goal_schedule", "rng", "gecos"} <= set(ck)
    assert all(t.dtype == torch.float16 for t in ck["model_state"].values() if t.is_floating_point() and t.dim())
    assert weights.stat().st_size < sum(p.stat().st_size for p in (first / "run").glob("ckpt_*.pt"))
    second = tmp_path / "elsewhere"
    restored = restore(tmp_path / "kept" / "genv2_seed0", second)
    assert restored.name == "ckpt_00000004.pt"
    assert _learn(second, 6, "--resume") == 0
    res = json.loads((second / "curve.json").read_text())
    assert [p["step"] for p in res["points"]] == [2, 4, 6] and len(res["chunks"]) == 2
    assert not (second / "run" / "archive").exists()  # resumed, not started again
    with pytest.raises(FileExistsError, match="already holds this run at step 6"):
        restore(tmp_path / "kept" / "genv2_seed0", second)


def test_unfinished_names_what_is_missing(tmp_path):
    with pytest.raises(SystemExit, match="holds no learning run to keep"):
        main(["keep", str(tmp_path), str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="no kept run at"):
        main(["restore", str(tmp_path / "x"), str(tmp_path / "out")])


def test_keep_warns_when_git_would_leave_the_kept_files_out(tmp_path, capsys):
    """The bug of session 7: `*.pt` in .gitignore silently kept the exported runs out of every commit."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    run = tmp_path / "run1"
    assert _learn(run, 2) == 0
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text("*.pt\n")
    assert main(["keep", str(run), str(repo / "kept" / "x_seed0")]) == 0
    err = capsys.readouterr().err
    assert "git ignores" in err and "x_seed0.pt" in err and "x_seed0_curve.json" not in err
    assert git_ignored([repo / "kept" / "x_seed0_curve.json"]) == []
    (repo / ".gitignore").write_text("*.pt\n!/kept/*.pt\n")
    assert git_ignored([repo / "kept" / "x_seed0.pt"]) == []
    assert git_ignored([tmp_path / "run1" / "curve.json"]) == []  # not in a checkout: nothing to warn about
