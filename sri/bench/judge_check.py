"""`python -m sri.bench judge-check`: the automatic S-Acc judge against labels given by eye.

The paper labelled 100 generated ShapeStacks samples by hand. Here generated samples of several
checkpoints are pooled (`make-pool`: images and softmax masks in a compressed `.npz`, shown in a
shuffled order on numbered PNG sheets that do not say which model drew them), labelled by a
person following the written rules (`RULES` below, also in the labels folder's README), and the
judge is scored against those labels (`report`): accuracy, false-plausible and false-implausible
rates, and S-Acc by eye vs by the judge per source model. A third of the samples, chosen by id
before any labelling, is held out: rules of the judge are developed on the other two thirds
(`dev`) and reported on the held-out third (`test`) as well.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from sri.bench.judge_pool import load_pool, read_counts, read_labels, split_of

__all__ = ["RULES", "COUNT_RULES", "make_pool", "load_pool", "read_labels", "read_counts", "split_of", "agreement",
           "count_agreement", "report", "main"]

RULES = """\
A sample is labelled by looking at its image alone (4x enlarged), in the paper's sense of a
plausible ShapeStacks scene ("all blocks in the stack are touching each other"):

plausible (1):   one stack: every visible block rests on the block below it or on the floor,
                 blocks touch along a face (not only at a corner), the lowest block stands on
                 the floor (below the wall/floor line), nothing floats in the air or on the wall;
                 a single block on the floor counts. Colours may be blurry as long as the blocks
                 and their contacts can be seen.
implausible (0): any block floating (a gap of background between it and everything below),
                 two or more separate stacks or blocks side by side on the floor, the lowest
                 block above the floor line, or no block visible at all (empty or faint scene).
ambiguous (-1):  it cannot be told whether a blob is one or several blocks, or whether two
                 blobs touch; these are left out of every score.
"""


COUNT_RULES = """\
blocks (optional third column of labels.csv): the number of blocks a person sees in the image,
whatever the label: a blob of one colour is one block unless an edge or a change of colour splits
it; a faint, nearly grey smudge is not a block; blank where it cannot be told.
"""


def _sheet(images: np.ndarray, ids: Sequence[int], path: Path, cols: int = 10, scale: int = 4) -> None:
    from PIL import Image, ImageDraw

    n, _, h, w = images.shape
    H, W, pad = h * scale, w * scale, 14
    rows = (n + cols - 1) // cols
    canvas = Image.new("RGB", (cols * (W + 4), rows * (H + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (im, sid) in enumerate(zip(images, ids)):
        tile = Image.fromarray(np.ascontiguousarray(im.transpose(1, 2, 0))).resize((W, H), Image.NEAREST)
        x, y = (i % cols) * (W + 4), (i // cols) * (H + pad)
        canvas.paste(tile, (x, y + pad))
        draw.text((x + 2, y + 1), str(sid), fill="black")
    canvas.save(path)


@torch.no_grad()
def make_pool(checkpoints: Sequence[str], per_checkpoint: int, out: Path, *, seed: int = 0,
              first_id: int = 0, per_sheet: int = 50, command: str = "") -> dict[str, Any]:
    """Sample `per_checkpoint` scenes from each checkpoint, shuffle them, write `pool_<first_id>.npz`
    (uint8 images `[N,3,H,W]`, uint8 masks `[N,K,H,W]`, ids, sources named `<path>@<step>`) and
    numbered sheets."""
    from sri.checkpoint import load_model
    from sri.provenance import provenance

    out.mkdir(parents=True, exist_ok=True)
    images, masks, sources, names = [], [], [], []
    for j, ck in enumerate(checkpoints):
        model, state = load_model(ck)
        names.append(f"{ck}@{state.get('step')}")  # the file may be replaced by a later export
        gen = torch.Generator().manual_seed(seed + 1000 * j)
        s = model.sample(per_checkpoint, generator=gen)
        images.append((s.images.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
        masks.append((s.masks[:, :, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
        sources += [j] * per_checkpoint
    if len({m.shape[1:] for m in masks}) != 1:
        raise ValueError("the checkpoints of one pool must share image size and K; make one pool per shape")
    img, msk, src = np.concatenate(images), np.concatenate(masks), np.asarray(sources)
    order = np.random.default_rng(seed).permutation(len(img))
    img, msk, src = img[order], msk[order], src[order]
    ids = np.arange(first_id, first_id + len(img))
    name = f"pool_{first_id:04d}"
    np.savez_compressed(out / f"{name}.npz", images=img, masks=msk, ids=ids, sources=src,
                        checkpoints=np.asarray(names))
    for k in range(0, len(img), per_sheet):
        _sheet(img[k:k + per_sheet], ids[k:k + per_sheet], out / f"sheet_{ids[k]:04d}.png")
    meta = {**provenance(command), "pool": name, "checkpoints": names,
            "per_checkpoint": per_checkpoint, "seed": seed, "ids": [int(ids[0]), int(ids[-1])]}
    (out / f"{name}.json").write_text(json.dumps(meta, indent=1))
    return meta


def count_agreement(counted: np.ndarray, eye: np.ndarray) -> dict[str, float]:
    """An automatic block count against counts by eye: mean absolute error, exact share, mean of each."""
    counted, eye = np.asarray(counted, float), np.asarray(eye, float)
    n = len(eye)
    nan = float("nan")
    return {"n": int(n), "mae": float(np.abs(counted - eye).mean()) if n else nan,
            "exact": float((counted == eye).mean()) if n else nan,
            "mean_counted": float(counted.mean()) if n else nan, "mean_eye": float(eye.mean()) if n else nan}


def agreement(judged: np.ndarray, eye: np.ndarray) -> dict[str, float]:
    """Accuracy and the two error rates of boolean `judged` against boolean labels `eye`."""
    judged, eye = np.asarray(judged, bool), np.asarray(eye, bool)
    n = len(eye)
    return {"n": int(n), "accuracy": float((judged == eye).mean()) if n else float("nan"),
            # of the samples the eye rejects, the share the judge accepts (and vice versa)
            "false_plausible": float(judged[~eye].mean()) if (~eye).any() else float("nan"),
            "false_implausible": float((~judged[eye]).mean()) if eye.any() else float("nan"),
            "s_acc_eye": float(eye.mean()) if n else float("nan"),
            "s_acc_judge": float(judged.mean()) if n else float("nan")}


def _judges() -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    from sri.metrics import judge, stacks

    def lenient(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return stacks.judge_samples_rules(images, masks, **stacks.JUDGE_LENIENT)

    # the judge (learned at 32x32), its rule-based part alone, the rules before their strict reading
    # (for continuity with earlier reports), masks only
    return {"masks_only": stacks.judge_samples_masks_only, "judge_samples": judge.judge_samples,
            "judge_samples_rules": stacks.judge_samples_rules, "judge_samples_lenient": lenient}


def repeatability(first: dict[int, int], second: dict[int, int], sources: dict[int, str],
                  judged: dict[int, bool]) -> dict[str, Any]:
    """A second, blind labelling pass against the first: their agreement where both scored a sample,
    S-Acc by eye of each pass per source, and the judge's accuracy against each pass and their consensus."""
    ids = [i for i in second if i in sources and i in first]  # samples labelled in both passes
    both = {i for i in ids if first.get(i, -1) >= 0 and second[i] >= 0}
    nan = float("nan")

    def judge_vs(lab: dict[int, int], sel: list[int]) -> dict[str, float]:
        sel = [i for i in sel if lab.get(i, -1) >= 0]
        return agreement(np.array([judged[i] for i in sel], bool), np.array([lab[i] == 1 for i in sel], bool))

    consensus = {i: first[i] for i in both if first[i] == second[i]}
    by_source = {}
    for src in dict.fromkeys(sources[i] for i in ids):
        mine = [i for i in ids if sources[i] == src]
        by_source[src] = {name: {"n": len(v), "s_acc_eye": float(np.mean(v)) if v else nan}
                          for name, lab in (("first", first), ("second", second))
                          for v in [[lab[i] for i in mine if lab.get(i, -1) >= 0]]}
        same = [first[i] == second[i] for i in mine if i in both]
        by_source[src]["n_both"] = len(same)
        by_source[src]["agreement"] = float(np.mean(same)) if same else nan
    return {"n_second": len(ids), "n_both": len(both),
            "agreement": float(np.mean([first[i] == second[i] for i in both])) if both else nan,
            "ambiguous_first": sum(first.get(i, -1) == -1 for i in ids),
            "ambiguous_second": sum(second[i] == -1 for i in ids),
            "by_source": by_source, "judge_vs_first": judge_vs(first, ids),
            "judge_vs_second": judge_vs(second, ids), "judge_vs_consensus": judge_vs(consensus, ids)}


def report(folder: Path, labels: Path | None = None, command: str = "",
           repeat: Path | None = None) -> dict[str, Any]:
    """Score every judge against the labels: all / dev / test, and per source checkpoint; with
    `repeat` (a CSV of a second, blind pass over some ids) also the eye's own repeatability."""
    from sri.provenance import provenance

    pool = load_pool(folder)
    lab = read_labels(labels or folder / "labels.csv")
    ids = pool["ids"]
    keep = np.array([lab.get(int(i), -1) >= 0 for i in ids])
    eye = np.array([lab.get(int(i), -1) == 1 for i in ids])
    split = np.array([split_of(int(i)) for i in ids])
    images = torch.from_numpy(pool["images"]).float() / 255
    masks = torch.from_numpy(pool["masks"]).float().unsqueeze(2) / 255
    res: dict[str, Any] = {**provenance(command), "labelled": int(sum(1 for i in ids if int(i) in lab)),
                           "ambiguous": int(sum(1 for i in ids if lab.get(int(i)) == -1)), "judges": {}}
    verdicts = {}
    for name, judge in _judges().items():
        judged = verdicts[name] = judge(images, masks).numpy()
        r: dict[str, Any] = {}
        for part in ("all", "dev", "test"):
            sel = keep & ((split == part) if part != "all" else True)
            r[part] = agreement(judged[sel], eye[sel])
        r["by_source"] = {str(s): agreement(judged[keep & (pool["sources"] == s)], eye[keep & (pool["sources"] == s)])
                          for s in dict.fromkeys(pool["sources"])}
        test = keep & (split == "test")  # a judge fit on dev labels is scored per checkpoint here only
        r["by_source_test"] = {str(s): agreement(judged[test & (pool["sources"] == s)],
                                                 eye[test & (pool["sources"] == s)])
                               for s in dict.fromkeys(pool["sources"])}
        res["judges"][name] = r
    counts = read_counts(labels or folder / "labels.csv")
    has = np.array([int(i) in counts for i in ids])
    if has.any():
        from sri.metrics.stacks import coloured_blocks, count_blocks, image_blocks, masks_to_labels

        eye_n = np.array([counts.get(int(i), -1) for i in ids])
        maps = masks_to_labels(masks[torch.from_numpy(has)])
        counters = {"visible_objects (mask argmax)": count_blocks(maps).numpy(),
                    "coloured_objects (coloured mask blocks)":
                        coloured_blocks(images[torch.from_numpy(has)], maps).numpy(),
                    "image_objects (colour regions of the image)": image_blocks(images[torch.from_numpy(has)]).numpy()}
        res["counts"] = {}
        for name, counted in counters.items():
            full = np.full(len(ids), -1)
            full[has] = counted
            sel = {part: has & ((split == part) if part != "all" else True) for part in ("all", "dev", "test")}
            r = {part: count_agreement(full[m], eye_n[m]) for part, m in sel.items()}
            by = {str(s): has & (pool["sources"] == s) for s in dict.fromkeys(pool["sources"][has])}
            r["by_source"] = {s: count_agreement(full[m], eye_n[m]) for s, m in by.items()}
            res["counts"][name] = r
    if repeat is not None:
        res["repeat"] = repeatability(lab, read_labels(repeat), {int(i): str(s) for i, s in zip(ids, pool["sources"])},
                                      {int(i): bool(j) for i, j in zip(ids, verdicts["judge_samples"])})
        res["repeat"]["file"] = repeat.name
    return res


def _print(res: dict[str, Any]) -> None:
    print(f"labelled {res['labelled']} samples ({res['ambiguous']} ambiguous, left out)")
    for name, r in res["judges"].items():
        print(f"\n{name}")
        print("  part   n    accuracy  false-plausible  false-implausible  S-Acc eye  S-Acc judge")
        for part in ("all", "dev", "test"):
            a = r[part]
            print(f"  {part:5} {a['n']:4}   {a['accuracy']:.3f}      {a['false_plausible']:.3f}            "
                  f"{a['false_implausible']:.3f}            {a['s_acc_eye']:.3f}      {a['s_acc_judge']:.3f}")
        for part, key in (("all", "by_source"), ("test (held out)", "by_source_test")):
            print(f"  per checkpoint, {part}:")
            for src, a in r[key].items():
                print(f"    {src}: n {a['n']}, S-Acc eye {a['s_acc_eye']:.3f}, judge {a['s_acc_judge']:.3f}, "
                      f"accuracy {a['accuracy']:.3f}")


def _print_counts(res: dict[str, Any]) -> None:
    for name, r in res.get("counts", {}).items():
        print(f"\nblocks per sample: {name} against the eye")
        print("  part   n    MAE    exact  mean counted  mean by eye")
        for part in ("all", "dev", "test"):
            a = r[part]
            print(f"  {part:5} {a['n']:4}   {a['mae']:.2f}   {a['exact']:.2f}   {a['mean_counted']:.2f}          "
                  f"{a['mean_eye']:.2f}")


def _print_repeat(res: dict[str, Any]) -> None:
    r = res.get("repeat")
    if not r:
        return
    print(f"\nthe eye against itself ({r['file']}: a second, blind pass over {r['n_second']} samples)")
    print(f"  scored in both passes: {r['n_both']}, same label: {r['agreement']:.3f}; ambiguous "
          f"{r['ambiguous_first']} (first) / {r['ambiguous_second']} (second)")
    for src, v in r["by_source"].items():
        print(f"  {src}: S-Acc eye {v['first']['s_acc_eye']:.3f} (n {v['first']['n']}) first, "
              f"{v['second']['s_acc_eye']:.3f} (n {v['second']['n']}) second; same label {v['agreement']:.3f} "
              f"(n {v['n_both']})")
    for name in ("first", "second", "consensus"):
        a = r[f"judge_vs_{name}"]
        print(f"  judge_samples against the {name} pass: accuracy {a['accuracy']:.3f} (n {a['n']})")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: `make-pool`, `sheet`, `fit` or `report` (default)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m sri.bench judge-check",
                                description="The S-Acc judge against labels given by eye (docs/judge/).")
    sub = p.add_subparsers(dest="cmd")
    mp = sub.add_parser("make-pool", help="sample checkpoints into a shuffled, numbered pool to label")
    mp.add_argument("checkpoints", nargs="+")
    mp.add_argument("--per-checkpoint", type=int, default=60)
    mp.add_argument("--first-id", type=int, default=0, help="id of the pool's first sample (pools must not overlap)")
    mp.add_argument("--seed", type=int, default=0)
    mp.add_argument("--out", default="docs/judge")
    sp = sub.add_parser("sheet", help="draw pooled samples by id, enlarged, to label or count them")
    sp.add_argument("--ids", required=True, help="an id range FIRST-LAST (inclusive), e.g. 440-459")
    sp.add_argument("--scale", type=int, default=8, help="enlargement (default 8: 256 px tiles at 32x32)")
    sp.add_argument("--cols", type=int, default=5)
    sp.add_argument("--folder", default="docs/judge")
    sp.add_argument("--out", required=True, help="PNG to write")
    fp = sub.add_parser("fit", help="fit the learned judge on the dev part of the labels")
    fp.add_argument("--folder", default="docs/judge")
    fp.add_argument("--labels", default="docs/judge/labels_strict.csv", help="CSV id,label (the strict reading)")
    fp.add_argument("--real", type=int, default=200,
                    help="scenes per anchor kind (real, lifted, lifted by one row, faint piece on the wall)")
    fp.add_argument("--out", default=None,
                    help="weights JSON (default: the shipped sri/metrics/weights/judge_32.json)")
    rp = sub.add_parser("report", help="agreement of the judges with the labels")
    rp.add_argument("--folder", default="docs/judge")
    rp.add_argument("--labels", default=None, help="CSV id,label (default <folder>/labels.csv)")
    rp.add_argument("--json", default=None, help="also write the result here")
    rp.add_argument("--repeat", default=None,
                    help="CSV id,label of a second, blind labelling pass over some ids: report the eye's repeatability")
    a = p.parse_args(argv if argv and argv[0] in ("make-pool", "sheet", "fit", "report", "-h", "--help")
                     else ["report", *argv])
    cmd = "python -m sri.bench judge-check " + shlex.join(argv)
    if a.cmd == "make-pool":
        meta = make_pool(a.checkpoints, a.per_checkpoint, Path(a.out), seed=a.seed, first_id=a.first_id, command=cmd)
        print(f"pool {meta['pool']}: ids {meta['ids'][0]}-{meta['ids'][1]} in {a.out}")
        return 0
    if a.cmd == "sheet":
        try:
            first, last = (int(v) for v in a.ids.split("-"))
        except ValueError:
            raise SystemExit(f"--ids expects FIRST-LAST, e.g. 440-459, got {a.ids!r}") from None
        pool = load_pool(Path(a.folder))
        keep = (pool["ids"] >= first) & (pool["ids"] <= last)
        if not keep.any():
            raise SystemExit(f"no pooled sample has an id in {first}-{last} (pools in {a.folder}: ids "
                             f"{int(pool['ids'].min())}-{int(pool['ids'].max())})")
        order = np.argsort(pool["ids"][keep])
        _sheet(pool["images"][keep][order], pool["ids"][keep][order].tolist(), Path(a.out), cols=a.cols,
               scale=a.scale)
        print(f"{int(keep.sum())} samples drawn to {a.out}")
        return 0
    if a.cmd == "fit":
        from sri.bench.judge_fit import fit_from_labels
        from sri.metrics.learned_judge import WEIGHTS

        if not Path(a.labels).is_file():
            raise SystemExit(f"judge-check fit: no labels file {a.labels} (a CSV with columns id,label)")
        out = Path(a.out) if a.out else WEIGHTS
        res = fit_from_labels(Path(a.folder), Path(a.labels), out, real=a.real, command=cmd)
        print(f"judge fit on {res['fit_on']['dev_samples']} dev labels + anchors {res['fit_on']['anchors']}: "
              f"dev 5-fold accuracy {res['dev_cv_accuracy']:.3f} -> {out}")
        return 0
    for given in (a.labels, a.repeat):
        if given and not Path(given).is_file():
            raise SystemExit(f"judge-check report: no labels file {given} (a CSV with columns id,label)")
    res = report(Path(a.folder), Path(a.labels) if a.labels else None, command=cmd,
                 repeat=Path(a.repeat) if a.repeat else None)
    _print(res)
    _print_counts(res)
    _print_repeat(res)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0
