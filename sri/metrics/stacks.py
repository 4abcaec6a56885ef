"""Automatic S-Acc: does a (generated or true) segmentation show one physically plausible stack?

The paper labelled 100 generated ShapeStacks scenes by hand ("all blocks in the stack are
touching each other"). `stack_is_plausible` makes that call from a segment map alone:

1. Segments: each label's 8-connected components; fragments smaller than `min_fragment` of the
   image are ignored as noise (generated argmax maps are speckled).
2. Background: a label is background (floor, wall, sky) when its kept pixels touch two or more
   image borders, or one border while covering `bg_area` of the image. True masks (one
   background label 0) and generated scenes (floor and walls split over several slots) are
   handled alike; label values themselves are never used.
3. Blocks: every remaining component of at least `min_block` of the image is a block (a slot
   holding two separate objects counts as two blocks). No block at all: implausible.
   Side-by-side pieces covering the same rows are merged into one block first (the faces of
   one block may be given to different slots), see `_merge_split_blocks`.
4. Stack: blocks sorted by their lowest row (ties: centroid) form the only possible stack order;
   every block must rest on the next lower one: in at least `min_contact` of the narrower
   block's width (at least one column), a pixel of the lower block lies at most `tol` rows below
   the upper block's lowest pixel in that column. Side contact does not count, so two blocks
   next to each other on the floor are not one stack.
5. Floor: where the background is split and a floor segment exists (background touching the
   bottom border but not the top one), the lowest block must have floor, not wall, directly
   below it (within `tol` rows, or reach the bottom border). With a single background label the
   floor contact cannot be seen and is not tested.
6. Balance (only with `balance=True`; off by default, as the paper's definition is "all blocks
   in the stack are touching each other"): at every contact, the centre of mass of everything
   it carries (the upper block and all blocks above it, each pixel of equal mass) must lie over
   the contact, i.e. between the left edge of its leftmost and the right edge of its rightmost
   contact column. A block that touches its support but overhangs so far that it would tip over
   is then implausible.

"Touching" in rule 4 means: a pixel of the lower block at most `tol` rows under the upper block's
lowest pixel in the same column. Resting blocks are 1 row apart, so a gap of up to `tol - 1`
background rows still counts as touching (at 64x64, tol = 2: a block lifted by 1 px touches, by
2 px it does not; at 32x32, tol = 1: no gap is tolerated). Blocks meeting only at a corner share
no column and do not touch.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

_EIGHT = np.ones((3, 3), dtype=bool)


def _as_maps(label_map) -> np.ndarray:
    a = label_map.detach().cpu().numpy() if isinstance(label_map, Tensor) else np.asarray(label_map)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"expected [B,H,W] integer segment maps, got shape {a.shape} "
                         f"(argmax generated masks over slots first: masks[:, :, 0].argmax(1))")
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"segment maps must be integers, got {a.dtype}")
    return a


def default_tol(image_size: int) -> int:
    """Rows of slack for "touching" at this image height: max(1, H // 32)."""
    return max(1, int(image_size) // 32)


def _lowest_rows(mask: np.ndarray) -> np.ndarray:
    """Per column, the lowest row of `mask` (-1 where the column is empty)."""
    H = mask.shape[0]
    rows = np.where(mask, np.arange(H)[:, None], -1)
    return rows.max(0)


def _contact_columns(upper: np.ndarray, lower: np.ndarray, tol: int) -> np.ndarray:
    """Columns where `lower` has a pixel at most `tol` rows under `upper`'s lowest pixel."""
    H = upper.shape[0]
    low = _lowest_rows(upper)
    cols = np.nonzero(low >= 0)[0]
    hit = np.zeros(cols.size, dtype=bool)
    for d in range(1, tol + 1):
        r = low[cols] + d
        ok = r < H
        hit[ok] |= lower[r[ok], cols[ok]]
    return cols[hit]


def _below_hits(upper: np.ndarray, lower: np.ndarray, tol: int) -> int:
    """Number of columns where `upper` touches `lower` from above (see `_contact_columns`)."""
    return int(_contact_columns(upper, lower, tol).size)


def _balanced(load: np.ndarray, contact: np.ndarray) -> bool:
    """Whether the centre of mass (mean column) of `load` lies over the contact columns."""
    com = float(np.nonzero(load)[1].mean())
    return float(contact.min()) - 0.5 <= com <= float(contact.max()) + 0.5


def _side_contact_rows(a: np.ndarray, b: np.ndarray, tol: int) -> int:
    """Rows in which `b` has a pixel at most `tol` columns left or right of a pixel of `a`."""
    near = a.copy()
    for d in range(1, tol + 1):
        near[:, d:] |= a[:, :-d]
        near[:, :-d] |= a[:, d:]
    return int((near & b).any(1).sum())


def _merge_split_blocks(blocks: list[np.ndarray], tol: int) -> list[np.ndarray]:
    """Merge side-by-side pieces spanning the same rows (>= 70% of the taller piece, touching
    along >= 50% of the shorter) into one block: a generated scene may give the faces of one
    block to different slots. Two equal blocks side by side on the floor merge too."""
    merged = True
    while merged and len(blocks) > 1:
        merged = False
        for i in range(len(blocks)):
            for j in range(i + 1, len(blocks)):
                a, b = blocks[i], blocks[j]
                ra, rb = a.any(1), b.any(1)
                ha, hb = int(ra.sum()), int(rb.sum())
                if (int((ra & rb).sum()) >= 0.7 * max(ha, hb)
                        and _side_contact_rows(a, b, tol) >= 0.5 * min(ha, hb)):
                    blocks = [m for k, m in enumerate(blocks) if k not in (i, j)] + [a | b]
                    merged = True
                    break
            if merged:
                break
    return blocks


def _segments(seg: np.ndarray, *, tol: int, min_fragment: float, min_block: float,
              bg_area: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Background masks and blocks (after merging split faces) of one segment map (rules 1-3)."""
    H, W = seg.shape
    n = H * W
    bg_masks: list[np.ndarray] = []
    blocks: list[np.ndarray] = []
    for lab in np.unique(seg):
        comp, k = ndimage.label(seg == lab, structure=_EIGHT)
        sizes = np.bincount(comp.ravel(), minlength=k + 1)[1:]
        keep = np.nonzero(sizes >= max(1.0, min_fragment * n))[0] + 1
        if keep.size == 0:
            continue
        kept = np.isin(comp, keep)
        borders = int(kept[0].any()) + int(kept[-1].any()) + int(kept[:, 0].any()) + int(kept[:, -1].any())
        if borders >= 2 or (borders == 1 and kept.sum() >= bg_area * n):
            bg_masks.append(kept)
            continue
        for c in keep:
            if sizes[c - 1] >= min_block * n:
                blocks.append(comp == c)
    return bg_masks, (_merge_split_blocks(blocks, tol) if blocks else blocks)


def _judge_one(seg: np.ndarray, *, tol: int, min_fragment: float, min_block: float, bg_area: float,
               min_contact: float, balance: bool = False) -> bool:
    H = seg.shape[0]
    bg_masks, blocks = _segments(seg, tol=tol, min_fragment=min_fragment, min_block=min_block,
                                 bg_area=bg_area)
    if not blocks:
        return False
    rows = np.arange(H)[:, None]
    order = sorted(range(len(blocks)), key=lambda i: (-_lowest_rows(blocks[i]).max(),
                                                      -float((blocks[i] * rows).sum() / blocks[i].sum())))
    blocks = [blocks[i] for i in order]
    for i, (lower, upper) in enumerate(zip(blocks[:-1], blocks[1:])):
        contact = _contact_columns(upper, lower, tol)
        width = min(int(upper.any(0).sum()), int(lower.any(0).sum()))
        if contact.size < max(1, int(np.ceil(min_contact * width))):
            return False
        if balance and not _balanced(np.logical_or.reduce(blocks[i + 1:]), contact):
            return False
    floors = [m for m in bg_masks if m[-1].any() and not m[0].any()]
    if floors:
        base = blocks[0]
        if _lowest_rows(base).max() >= H - 1 - tol:
            return True  # reaches the bottom border: the floor contact is out of view
        floor = np.logical_or.reduce(floors)
        if _below_hits(base, floor, tol) < 1:
            return False
    return True


def stack_is_plausible(label_map, *, tol: int | None = None, min_fragment: float = 0.001,
                       min_block: float = 0.002, bg_area: float = 0.2, min_contact: float = 0.15,
                       balance: bool = False) -> Tensor:
    """[B,H,W] integer segment maps -> [B] bool: one stack, each block on the next, base on the floor.

    `tol` (rows of slack for "touching") defaults to max(1, H // 32); area thresholds are fractions
    of the image; `balance=True` adds rule 6 (centre of mass over each contact). See the module
    docstring for the rules.
    """
    maps = _as_maps(label_map)
    tol = default_tol(maps.shape[1]) if tol is None else int(tol)
    out = [_judge_one(m, tol=tol, min_fragment=min_fragment, min_block=min_block, bg_area=bg_area,
                      min_contact=min_contact, balance=balance) for m in maps]
    return torch.tensor(out, dtype=torch.bool)


def count_blocks(label_map, *, tol: int | None = None, min_fragment: float = 0.001,
                 min_block: float = 0.002, bg_area: float = 0.2) -> Tensor:
    """[B,H,W] integer segment maps -> [B] long: the blocks S-Acc sees (visible objects per scene).

    Same rules 1-3 as `stack_is_plausible` (background by borders and area, split faces merged),
    so a sample's count and the judge's view of it agree.
    """
    maps = _as_maps(label_map)
    tol = default_tol(maps.shape[1]) if tol is None else int(tol)
    out = [len(_segments(m, tol=tol, min_fragment=min_fragment, min_block=min_block, bg_area=bg_area)[1])
           for m in maps]
    return torch.tensor(out, dtype=torch.long)


def coloured_blocks(images: Tensor, label_map, *, min_colour: float | None = None, **kw: Any) -> Tensor:
    """[N,3,H,W] images in [0,1] and their [N,H,W] segment maps -> [N] long: the blocks of
    `count_blocks` whose pixels are coloured in the image (mean of max - min over the channels at
    least `min_colour`, default the image judge's `t_low`). On real scenes every block counts (their
    mean colour is 0.38 or more); in generated scenes the argmax of the masks also makes blocks of
    nearly grey pieces of wall or floor, which nobody sees as a block."""
    t = JUDGE_DEFAULTS["t_low"] if min_colour is None else float(min_colour)
    maps = _as_maps(label_map)
    arr = images.detach().float().clamp(0, 1).cpu().numpy()
    if arr.shape[0] != maps.shape[0] or arr.shape[2:] != maps.shape[1:]:
        raise ValueError(f"images {tuple(arr.shape)} and segment maps {tuple(maps.shape)} do not match")
    tol = default_tol(maps.shape[1]) if kw.get("tol") is None else int(kw["tol"])
    opts = {"min_fragment": kw.get("min_fragment", 0.001), "min_block": kw.get("min_block", 0.002),
            "bg_area": kw.get("bg_area", 0.2)}
    out = []
    for img, m in zip(arr, maps):
        colour = img.max(0) - img.min(0)
        _, blocks = _segments(m, tol=tol, **opts)
        out.append(sum(float(colour[b].mean()) >= t for b in blocks))
    return torch.tensor(out, dtype=torch.long)


def image_blocks(images: Tensor, *, delta: float = 0.08, min_block: float = 0.015, t_low: float | None = None,
                 t_high: float | None = None, min_speck: float | None = None) -> Tensor:
    """[N,3,H,W] images in [0,1] -> [N] long: blocks counted from the image alone, as colour regions.

    Coloured pixels (max - min over the channels above `t_low`) are joined to their 4-neighbours
    whose colour differs by less than `delta` in every channel; a region of at least `min_block` of
    the image with `min_speck` of it strongly coloured (above `t_high`) is a block. Thresholds not
    given are the image judge's (`JUDGE_DEFAULTS`); `delta` and `min_block` were chosen on the dev
    part of the blocks counted by eye (docs/judge/). Made for 32x32 `blocks` at object_scale 1.6: on
    its real test scenes it overcounts a little (shading splits a block), on generated samples it
    undercounts a little (blur joins neighbours); at object_scale 1.0 the blocks are below `min_block`.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"image_blocks expects images [N,3,H,W] in [0,1], got shape {tuple(images.shape)}")
    t_low = JUDGE_DEFAULTS["t_low"] if t_low is None else float(t_low)
    t_high = JUDGE_DEFAULTS["t_high"] if t_high is None else float(t_high)
    min_speck = JUDGE_DEFAULTS["min_speck"] if min_speck is None else float(min_speck)
    arr = images.detach().float().clamp(0, 1).cpu().numpy()
    H, W = arr.shape[2:]
    n = H * W
    idx = np.arange(n).reshape(H, W)
    pairs = [(idx[:, :-1].ravel(), idx[:, 1:].ravel()), (idx[:-1, :].ravel(), idx[1:, :].ravel())]
    out = []
    for img in arr:
        flat = img.reshape(3, -1)
        colour = flat.max(0) - flat.min(0)
        fg = colour > t_low
        rows, cols = [], []
        for a, b in pairs:
            ok = fg[a] & fg[b] & (np.abs(flat[:, a] - flat[:, b]).max(0) < delta)
            rows.append(a[ok])
            cols.append(b[ok])
        r, c = np.concatenate(rows), np.concatenate(cols)
        _, lab = connected_components(coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n)), directed=False)
        sizes = np.bincount(lab[fg], minlength=n)
        strong = np.bincount(lab[fg & (colour > t_high)], minlength=n)
        out.append(int(((sizes >= min_block * n) & (strong >= min_speck * n)).sum()))
    return torch.tensor(out, dtype=torch.long)


def s_acc(label_maps, **kw: Any) -> float:
    """S-Acc: the share of scenes whose segment maps show one plausible stack."""
    ok = stack_is_plausible(label_maps, **kw)
    if ok.numel() == 0:
        raise ValueError("S-Acc needs at least one scene")
    return float(ok.float().mean())


def float_one_block(true_mask, *, lift: int | None = None, generator: np.random.Generator | None = None) -> Tensor:
    """Floating-block perturbation of true masks (0 = background): in each [H,W] map, lift one
    block that has a block below it by `lift` rows (default max(3, H // 16)), filling the gap with
    background, so it no longer touches the block below. Maps with a single block are unchanged."""
    maps = _as_maps(true_mask).copy()
    rng = generator if generator is not None else np.random.default_rng(0)
    H = maps.shape[1]
    lift = max(3, H // 16) if lift is None else int(lift)
    rows = np.arange(H)[:, None]
    for m in maps:
        labels = [lab for lab in np.unique(m) if lab != 0]
        if len(labels) < 2:
            continue
        lowest = {lab: int(np.where(m == lab, rows, -1).max()) for lab in labels}
        base = max(labels, key=lambda lab: lowest[lab])
        lab = rng.choice([x for x in labels if x != base])
        src = m == lab
        m[src] = 0
        m[:-lift][src[lift:]] = lab
    return torch.from_numpy(maps)


def _split_background(maps: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Relabel background 0 as wall (-1) above / floor (-2) below the row where the background
    colour jumps most, as a generative model that gives floor and wall their own slots would."""
    out = maps.copy()
    H = maps.shape[1]
    rows = np.arange(H)[:, None]
    for m, img, o in zip(maps, images.astype(np.float64), out):
        bg = m == 0
        col = np.stack([img[r][bg[r]].mean(0) if bg[r].any() else img[r].mean(0) for r in range(H)])
        h0 = int(np.abs(np.diff(col, axis=0)).sum(1).argmax()) + 1
        o[bg & (rows < h0)] = -1
        o[bg & (rows >= h0)] = -2
    return out


def _jitter(maps: np.ndarray, rng: np.random.Generator, edge: float = 0.3, speckle: float = 0.01) -> np.ndarray:
    """Ragged boundaries (a pixel takes a random neighbour's label with prob. `edge`) plus
    `speckle` of pixels set to a random label in the map, like argmax maps of generated scenes."""
    B, H, W = maps.shape
    dy, dx = rng.integers(-1, 2, (2, B, H, W))
    yy = np.clip(np.arange(H)[None, :, None] + dy, 0, H - 1)
    xx = np.clip(np.arange(W)[None, None, :] + dx, 0, W - 1)
    nb = maps[np.arange(B)[:, None, None], yy, xx]
    out = np.where((nb != maps) & (rng.random(maps.shape) < edge), nb, maps)
    for o in out:
        labels = np.unique(o)
        sp = rng.random(o.shape) < speckle
        o[sp] = rng.choice(labels, int(sp.sum()))
    return out


def validate_stack_judge(num: int = 1000, seed: int = 0, image_size: int = 64) -> dict[str, float]:
    """Check the S-Acc judge on `num` synthetic `blocks` scenes (sri.data.synthetic) -> figures.

    `plausible_true`: share of true masks judged plausible; `implausible_lifted`: share judged
    implausible after `float_one_block` (one block lifted off the one below). The `*_noisy`
    pair repeats both with floor and wall split into two labels and ragged, speckled boundaries.
    """
    from sri.data.synthetic import render_blocks

    scenes = render_blocks(num, image_size, seed=seed)
    true = scenes.masks.astype(np.int64)
    lifted = float_one_block(true, generator=np.random.default_rng(seed)).numpy()
    rng = np.random.default_rng(seed + 1)
    noisy_true = _jitter(_split_background(true, scenes.images), rng)
    noisy_lifted = _jitter(_split_background(lifted, scenes.images), rng)
    rate = lambda maps: float(stack_is_plausible(maps).float().mean())  # noqa: E731
    return {"num": num, "image_size": image_size, "seed": seed,
            "plausible_true": rate(true), "implausible_lifted": 1.0 - rate(lifted),
            "plausible_true_noisy": rate(noisy_true), "implausible_lifted_noisy": 1.0 - rate(noisy_lifted)}


def masks_to_labels(masks: Tensor) -> Tensor:
    """Softmax masks `[N,K,1,H,W]` (or `[N,K,H,W]`) -> `[N,H,W]` argmax slot index."""
    if masks.dim() == 5:
        masks = masks.squeeze(2)
    if masks.dim() != 4:
        raise ValueError(f"expected softmax masks [N,K,1,H,W] or [N,K,H,W], got shape {tuple(masks.shape)}")
    return masks.argmax(1)


def judge_samples_masks_only(images: Tensor, masks: Tensor) -> Tensor:
    """The mask-only judge: `stack_is_plausible` on the argmax of the softmax masks (images unused)."""
    return stack_is_plausible(masks_to_labels(masks).cpu())


# The image judge's thresholds: chosen on the `dev` two thirds of the samples labelled by eye in
# docs/judge/ (python -m sri.bench judge-check), reported there on the held-out third as well.
# `faint_*` and `gap_*` are the strict reading of "nothing floats" (a coloured piece counts however
# faint; a band of background colour across the mass is a gap), chosen on the dev part of the strict
# labels and adopted after a pool labelled later confirmed them (docs/judge/, 2026-12-07);
# `JUDGE_LENIENT` turns them off: the judge as it was before.
JUDGE_DEFAULTS = {"t_low": 0.08, "t_high": 0.16, "min_object": 0.02, "min_speck": 0.006, "gap": 1,
                  "min_strength": 0.15, "floor_margin": 1,
                  "faint_level": 0.06, "faint_pixels": 1, "gap_eps": 0.1, "gap_cols": 2}
JUDGE_LENIENT = {**JUDGE_DEFAULTS, "faint_pixels": 0, "gap_eps": 0.0}


def wall_floor_row(img: np.ndarray, fg: np.ndarray) -> int:
    """The wall/floor line: the row under the largest drop in mean background brightness
    (searched between 30% and 75% of the height; the wall is lighter than the floor)."""
    H = img.shape[1]
    lum, bg = img.mean(0), ~fg
    rows = np.array([lum[r][bg[r]].mean() if bg[r].sum() > 2 else np.nan for r in range(H)])
    drop = rows[:-1] - rows[1:]
    lo, hi = int(0.3 * H), max(int(0.75 * H), int(0.3 * H) + 1)
    window = drop[lo:hi]
    if np.all(np.isnan(window)):
        return H  # no background to tell: nothing can stand on the floor
    return lo + int(np.nanargmax(window)) + 1


def faint_piece(colour: np.ndarray, comp: np.ndarray, sizes: np.ndarray, level: float, pixels: int) -> bool:
    """Whether a piece other than the largest has `pixels` or more pixels coloured above `level`."""
    if pixels <= 0 or len(sizes) < 2:
        return False
    main = int(np.argmax(sizes)) + 1
    counts = np.bincount(comp[colour > level].ravel(), minlength=len(sizes) + 1)[1:]
    return any(c >= pixels for j, c in enumerate(counts) if j + 1 != main)


def background_gap(img: np.ndarray, coloured: np.ndarray, mass: np.ndarray, eps: float, min_cols: int) -> bool:
    """Whether a row inside the mass (mass above and below) matches that row's background colour
    within `eps` in every one of at least `min_cols` columns: a gap the blur closed."""
    if eps <= 0:
        return False
    rows = np.nonzero(mass.any(1))[0]
    for r in range(int(rows.min()) + 1, int(rows.max())):
        bg = ~coloured[r]
        cols = np.nonzero(mass[:r].any(0) & mass[r + 1:].any(0) & mass[r])[0]
        if bg.sum() < 3 or len(cols) < min_cols:
            continue
        bg_colour = np.median(img[:, r, bg], axis=1)
        if np.all(np.abs(img[:, r, cols] - bg_colour[:, None]).max(0) < eps):
            return True
    return False


def coloured_components(colour: np.ndarray, t_low: float, g: int) -> tuple[np.ndarray, int, np.ndarray]:
    """4-connected components (blocks meeting at a corner do not touch) of the pixels whose colour
    (max - min over RGB) exceeds `t_low`, vertical gaps of up to `g` rows closed (blocks one above the
    other whose blurred boundary lost its colour still touch): (labels, count, sizes)."""
    low = colour > t_low
    if g:
        low = low | ndimage.binary_closing(low, structure=np.ones((2 * g + 1, 1), bool))
    comp, k = ndimage.label(low)
    return comp, k, np.bincount(comp.ravel(), minlength=k + 1)[1:]


def judge_image(img: np.ndarray, *, t_low: float, t_high: float, min_object: float, min_speck: float,
                gap: int, min_strength: float, floor_margin: int, faint_level: float = 0.0,
                faint_pixels: int = 0, gap_eps: float = 0.0, gap_cols: int = 2) -> bool:
    """One image `[3,H,W]` in [0,1]: one coloured mass, touching throughout, on the floor, and with
    the strict rules on (`faint_pixels`, `gap_eps` > 0) no faint piece apart and no background band
    across the mass (see `judge_samples_rules`)."""
    H, W = img.shape[1:]
    n = H * W
    colour = img.max(0) - img.min(0)  # the blocks are saturated, wall and floor nearly grey
    # hysteresis: masses are traced at a low colour level, kept if strongly coloured
    comp, k, sizes = coloured_components(colour, t_low, gap * max(1, H // 32))
    strong = np.bincount(comp[colour > t_high].ravel(), minlength=k + 1)[1:]
    seen = strong >= min_speck * n  # a piece a person sees as coloured
    objects = np.nonzero(seen & (sizes >= min_object * n))[0]
    specks = np.nonzero(seen & (sizes < min_object * n))[0]
    if len(objects) != 1 or len(specks):
        return False  # nothing visible, two separate masses, or something floating
    if faint_piece(colour, comp, sizes, faint_level, faint_pixels):
        return False  # a faint coloured piece apart from the mass: floating, however pale
    mass = comp == objects[0] + 1
    if colour[mass].mean() < min_strength:
        return False  # a faint ghost of a scene
    bottom = int(np.nonzero(mass.any(1))[0].max())
    if bottom < wall_floor_row(img, colour > t_high) + floor_margin:
        return False  # does not stand below the wall/floor line
    return not background_gap(img, colour > t_low, mass, gap_eps, gap_cols)


def judge_samples_rules(images: Tensor, masks: Tensor | None = None, **overrides: Any) -> Tensor:
    """The rule-based S-Acc judge: does each generated scene show one plausible stack? -> `[N]` bool.

    `images` `[N,3,H,W]` in [0,1] and softmax `masks` `[N,K,1,H,W]`, as a model's `sample` returns
    them. The call is made from the image, as a person labelling samples makes it (the argmax of
    generated masks often splits one block over slots or joins colour blobs, so the mask-only
    `judge_samples_masks_only` disagreed with the eye, docs/judge/): the blocks are the coloured
    pixels (wall and floor are nearly grey), traced at a low colour level and kept where strongly
    coloured (hysteresis); small vertical gaps of lost colour between blocks are closed; the scene
    is plausible when there is exactly one 4-connected mass of a visible size and colour, no other
    coloured piece however faint (nothing floating), no row across the mass that has the
    background's colour (a gap the blur bridged), and the mass's lowest row is on the floor, below
    the wall/floor line. `masks` are accepted for the common signature and not used. Thresholds:
    `JUDGE_DEFAULTS` (override by keyword; `**JUDGE_LENIENT` is the judge before the strict rules).
    `sri.metrics.judge_samples` uses it where no learned judge was fit for the image size.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"judge_samples expects images [N,3,H,W] in [0,1], got shape {tuple(images.shape)}")
    kw = {**JUDGE_DEFAULTS, **overrides}
    arr = images.detach().float().clamp(0, 1).cpu().numpy()
    return torch.tensor([judge_image(a, **kw) for a in arr], dtype=torch.bool)


def lift_top_block_image(images: Tensor, true_masks: Tensor, lift: int | None = None) -> Tensor:
    """Image-space floating-block perturbation of real scenes: the top block (highest mask label)
    of each scene with two or more blocks is moved up by `lift` rows (default max(3, H // 8)) and
    its old pixels are filled with the row's background colour (median of the row's visible
    background). Scenes with a single block are returned unchanged."""
    out = images.detach().float().clone()
    H = images.shape[-2]
    lift = max(3, H // 8) if lift is None else int(lift)
    for img, orig, m in zip(out, images.detach().float(), true_masks.long()):
        labels = [int(v) for v in torch.unique(m) if int(v) != 0]
        if len(labels) < 2:
            continue
        top, bg = m == max(labels), m == 0
        for r in range(H):
            if top[r].any():
                row = orig[:, r]
                fill = row[:, bg[r]].median(1).values if bg[r].any() else row.mean(1)
                img[:, r, top[r]] = fill[:, None]
        ys, xs = torch.nonzero(top, as_tuple=True)
        keep = ys - lift >= 0
        img[:, ys[keep] - lift, xs[keep]] = orig[:, ys[keep], xs[keep]]
    return out
