"""Trial: a classifier on measured scene features (`sri.metrics.judge_features`), learned from the
strict labels' dev part, with and without real scenes (plausible) and the same scenes with their
top block lifted (floating) added to every training fold.

    python docs/judge/trials/learned_features.py             # 5-fold CV inside dev
    python docs/judge/trials/learned_features.py --held-out logistic  # once: fit on dev, score the test part
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

os.chdir(Path(__file__).resolve().parents[3])
sys.path.insert(0, ".")
from _data import part_of  # noqa: E402

from sri.bench.judge_check import load_pool  # noqa: E402
from sri.data import build_dataset  # noqa: E402
from sri.metrics.judge_features import scene_features  # noqa: E402
from sri.metrics.stacks import lift_top_block_image  # noqa: E402


def real_scenes(split: str, num: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(real 32x32 `blocks` scenes at object scale 1.6, the same with the top block lifted)."""
    ds = build_dataset("blocks", None, split, num=num, image_size=32, object_scale=1.6)
    imgs = torch.stack([ds[i]["image"] for i in range(len(ds))])
    masks = torch.stack([ds[i]["mask"] for i in range(len(ds))])
    return imgs.numpy(), lift_top_block_image(imgs, masks).numpy()


pool = load_pool(Path("docs/judge"))
X = scene_features(pool["images"].astype(np.float32) / 255)
dev, eye = part_of("labels_strict.csv")
test, _ = part_of("labels_strict.csv", "test")
train_real, train_lift = (scene_features(a) for a in real_scenes("train"))
test_real, test_lift = (scene_features(a) for a in real_scenes("test"))
extra_x = np.concatenate([train_real, train_lift])
extra_y = np.r_[np.ones(len(train_real), bool), np.zeros(len(train_lift), bool)]
models = {
    "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000)),
    "forest": lambda: RandomForestClassifier(500, min_samples_leaf=2, random_state=0, n_jobs=1),
    "boosting": lambda: HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                                       l2_regularization=1.0, random_state=0),
}
xd, yd = X[dev], eye[dev]
skf = StratifiedKFold(5, shuffle=True, random_state=0)
print(f"dev n {dev.sum()}, rule judge {((X[dev, 0] > 0.5) == yd).mean():.3f}")
for extra in (False, True):
    for name, make in models.items():
        acc, kept, caught = [], [], []
        for tr, va in skf.split(xd, yd):
            xt, yt = (np.concatenate([xd[tr], extra_x]), np.r_[yd[tr], extra_y]) if extra else (xd[tr], yd[tr])
            m = make().fit(xt, yt)
            acc.append((m.predict(xd[va]) == yd[va]).mean())
            kept.append(m.predict(test_real).mean())
            caught.append(1 - m.predict(test_lift).mean())
        print(f"{name}{' + real/lifted' if extra else ''}: dev CV {np.mean(acc):.3f} (folds {np.round(acc, 3)}), "
              f"real test scenes kept {np.mean(kept):.3f}, lifted caught {np.mean(caught):.3f}")
if "--held-out" in sys.argv:
    name = sys.argv[sys.argv.index("--held-out") + 1]
    m = models[name]().fit(np.concatenate([xd, extra_x]), np.r_[yd, extra_y])
    print(f"held out ({name} + real/lifted): {(m.predict(X[test]) == eye[test]).mean():.3f} (n {test.sum()}), "
          f"rule judge {((X[test, 0] > 0.5) == eye[test]).mean():.3f}")
