"""The learned S-Acc judge (issue 22): its features, its trees against sklearn, its fit command, its dispatch."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sri.metrics import judge_samples, judge_samples_rules
from sri.metrics.judge_features import FEATURE_NAMES, image_features, scene_features
from sri.metrics.learned_judge import WEIGHTS, fit_judge, judge_probability, learned_verdicts, load_judge, one_mass

ROOT = Path(__file__).resolve().parent.parent


def test_every_feature_is_named_for_empty_and_busy_images():
    rng = np.random.default_rng(0)
    for img in (np.full((3, 32, 32), 0.5, np.float32), rng.random((3, 32, 32), np.float32)):
        f = image_features(img)
        assert f.shape == (len(FEATURE_NAMES),) and np.isfinite(f).all()


def test_the_exported_trees_give_sklearns_probabilities():
    """The judge walks its trees in numpy; sklearn's own predict_proba is the independent check."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from sri.metrics.learned_judge import BOOSTING

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 3] * x[:, 1] + 0.3 * rng.normal(size=300)) > 0
    w = fit_judge(x, y)
    ref = HistGradientBoostingClassifier(**BOOSTING, random_state=0).fit(x, y)
    xt = rng.normal(size=(200, 6)).astype(np.float32)
    assert np.allclose(judge_probability(xt, w), ref.predict_proba(xt)[:, 1], atol=1e-5)
    with pytest.raises(ValueError, match="fit on 6 features"):
        judge_probability(xt[:, :5], w)
    with pytest.raises(ValueError, match="both labels"):
        fit_judge(x, np.ones(300, bool))


def test_one_mass_is_required_before_the_trees_decide():
    f = np.zeros((3, len(FEATURE_NAMES)), np.float32)
    f[:, FEATURE_NAMES.index("objects_t0.08")] = [1, 2, 1]
    f[:, FEATURE_NAMES.index("specks_t0.08")] = [0, 0, 1]
    assert one_mass(f).tolist() == [True, False, False]


def test_judge_samples_picks_the_judge_by_size_and_says_why_it_refuses():
    from sri.data import build_dataset

    ds = build_dataset("blocks", None, "test", num=12, image_size=32, object_scale=1.6)
    imgs = torch.stack([ds[i]["image"] for i in range(len(ds))])
    assert torch.equal(judge_samples(imgs), torch.from_numpy(learned_verdicts(imgs.numpy())))
    assert torch.equal(judge_samples(imgs, method="rules"), judge_samples_rules(imgs))
    assert torch.equal(judge_samples(imgs, faint_pixels=0), judge_samples_rules(imgs, faint_pixels=0))
    big = torch.nn.functional.interpolate(imgs, size=64)
    assert torch.equal(judge_samples(big), judge_samples_rules(big))  # no learned judge at 64x64
    with pytest.raises(ValueError, match="fit on 32x32"):
        judge_samples(big, method="learned")
    with pytest.raises(ValueError, match="method='rules'"):
        judge_samples(imgs, method="learned", faint_pixels=0)
    with pytest.raises(ValueError, match="one of"):
        judge_samples(imgs, method="eye")


def test_the_shipped_judge_was_fit_on_the_committed_labels():
    """The labels it was fit on (ids up to the last it saw) are the committed ones; labels of later
    pools are a fresh check of it and do not need a refit."""
    from sri.bench.judge_fit import labels_digest
    from sri.bench.judge_pool import read_labels

    w = load_judge()
    labels = read_labels(ROOT / "docs" / "judge" / w["fit_on"]["labels"])
    assert w["fit_on"]["labels_digest"] == labels_digest(labels, w["fit_on"]["ids"][1]), \
        "labels the judge was fit on changed: run `python -m sri.bench judge-check fit`"
    assert w["image_size"] == 32 and w["num_features"] == len(FEATURE_NAMES)
    assert w["dev_cv_accuracy"] > 0.8 and WEIGHTS.name == "judge_32.json"


def _tiny_pool(folder: Path) -> None:
    """A pool of 60 labelled 32x32 scenes in the real format: real scenes (1) and lifted ones (0)."""
    from sri.bench.judge_fit import anchors

    imgs, plausible, _ = anchors(15, 32, seed=3)
    n = len(imgs)
    ids = np.arange(n)
    np.savez_compressed(folder / "pool_0000.npz", images=(np.clip(imgs, 0, 1) * 255).astype(np.uint8),
                        masks=np.zeros((n, 2, 32, 32), np.uint8), ids=ids, sources=np.zeros(n, int),
                        checkpoints=np.array(["tiny.pt"]))
    rows = ["id,label"] + [f"{i},{int(p)}" for i, p in zip(ids, plausible)]
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")


def test_judge_check_fit_end_to_end_on_a_tiny_pool(tmp_path):
    from sri.bench.judge_check import main

    _tiny_pool(tmp_path)
    out = tmp_path / "judge.json"
    assert main(["fit", "--folder", str(tmp_path), "--labels", str(tmp_path / "labels.csv"), "--real", "10",
                 "--out", str(out)]) == 0
    w = json.loads(out.read_text())
    assert w["fit_on"]["anchors"] == {"real": 10, "lifted": 10, "lifted_1_row": 10, "faint_piece": 10}
    assert 0 < w["fit_on"]["dev_samples"] < 60 and len(w["dev_cv_folds"]) == 5 and w["command"].endswith(str(out))
    x = scene_features(np.load(tmp_path / "pool_0000.npz")["images"].astype(np.float32) / 255)
    assert judge_probability(x, w).shape == (60,)
    with pytest.raises(SystemExit, match="no labels file"):
        main(["fit", "--folder", str(tmp_path), "--labels", str(tmp_path / "nope.csv")])


def test_the_strict_labels_score_as_reported():
    """docs/judge/report_strict.json is what `judge-check report --labels labels_strict.csv --repeat
    labels_strict_repeat.csv` gives: the judges per part and the eye's strict repeatability."""
    from sri.bench.judge_check import report

    folder = ROOT / "docs" / "judge"
    got = report(folder, folder / "labels_strict.csv", repeat=folder / "labels_strict_repeat.csv")
    want = json.loads((folder / "report_strict.json").read_text())
    for name in ("judge_samples", "judge_samples_rules"):
        for part in ("all", "dev", "test"):
            assert got["judges"][name][part]["n"] == want["judges"][name][part]["n"]
            assert np.isclose(got["judges"][name][part]["accuracy"], want["judges"][name][part]["accuracy"])
    assert np.isclose(got["repeat"]["agreement"], want["repeat"]["agreement"])
