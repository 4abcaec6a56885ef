"""Deterministic synthetic scenes with instance masks, rendered with vectorised numpy.

`blocks` (ShapeStacks-like): a wall and a floor of random muted colours and one tower of
2-5 saturated blocks (cuboids and cylinders, optionally a sphere on top: nothing can rest on
a sphere), each block resting on the one below with a small horizontal offset. Geometry is
exact in pixels: block j occupies rows `top_j..bottom_j`, `bottom_0` is the row just above the
floor region and `bottom_{j+1} = top_j - 1`, every silhouette has pixels in its top and bottom
rows above/below the supporting block, so each block's bottom edge touches the top edge of the
block below (adjacent pixels) and the bottom block touches the floor. Blocks never overlap.
Mask 0 = wall + floor, 1..n = blocks from bottom to top.

`shapes` (CLEVR-like): 3-6 spheres, cubes and cylinders scattered on a floor, sized by depth
and drawn far-to-near (painter's order), so nearer objects occlude farther ones. Labels are
1..n over the objects still visible, in drawing order; `num_objects` counts visible objects.

Objects are flat-coloured with multiplicative shading (no clipping), backgrounds are
desaturated, so every mask edge is a colour edge. Scenes are generated in blocks of 1000
whose parameters come from `SeedSequence([seed, block])`: scene i is the same whatever `num`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

NAMES = ("blocks", "shapes")
_BLOCK = 1000
_RENDER_BATCH = 250
_SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}


class Scenes(NamedTuple):
    """`images` uint8 [N,H,W,3], `masks` uint8 [N,H,W] (0 background), `num_objects` uint8 [N]."""
    images: np.ndarray
    masks: np.ndarray
    num_objects: np.ndarray


def split_seed(seed: int, split: str) -> int:
    """The generator seed of a split (train/val/test get unrelated streams)."""
    if split not in _SPLIT_INDEX:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(_SPLIT_INDEX)}")
    return int(np.random.SeedSequence([int(seed), _SPLIT_INDEX[split]]).generate_state(1)[0])


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB in [0,1]; returns [..., 3]."""
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    out = np.zeros(h.shape + (3,), np.float64)
    for k, c in enumerate(choices):
        out = np.where((i == k)[..., None], c, out)
    return out


def _object_colours(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return _hsv_to_rgb(rng.random(shape), rng.uniform(0.6, 1.0, shape), rng.uniform(0.6, 0.82, shape))


def _muted_colours(rng: np.random.Generator, n: int, lo: float = 0.35, hi: float = 0.8) -> np.ndarray:
    grey = rng.uniform(lo, hi, (n, 1))
    return np.clip(grey + rng.uniform(-0.04, 0.04, (n, 3)), 0, 1)


def _background(p: dict, S: int) -> np.ndarray:
    """Wall above row h0, floor from h0 on, each with a soft vertical gradient -> float [B,S,S,3]."""
    R = np.arange(S, dtype=np.float32)[None, :, None]
    h0 = p["h0"][:, None, None].astype(np.float32)
    wall = 0.85 + 0.15 * R / h0
    floor = 0.75 + 0.25 * (R - h0) / np.maximum(S - h0, 1)
    is_wall = R < h0
    shade = np.where(is_wall, wall, floor)[..., None]          # [B,S,1,1]
    col = np.where(is_wall[..., None], p["wall"][:, None, None, :], p["floor"][:, None, None, :])
    img = np.broadcast_to(shade * col, (len(h0), S, S, 3)).astype(np.float32)
    return img.copy()


# ------------------------------------------------------------------------------------- blocks
def _blocks_params(rng: np.random.Generator, B: int, S: int, object_scale: float = 1.0) -> dict:
    J = 5
    h0 = np.floor(S * rng.uniform(0.42, 0.62, B)).astype(np.int64)
    ybase = np.clip(np.floor(S * rng.uniform(0.80, 0.93, B)).astype(np.int64), h0, S - 2)
    n = rng.integers(2, 6, B)
    shape = rng.integers(0, 2, (B, J))                          # 0 cuboid, 1 cylinder
    sphere_top = rng.random(B) < 0.25
    shape[np.arange(B), n - 1] = np.where(sphere_top, 2, shape[np.arange(B), n - 1])
    w = np.maximum(3, np.round(S * object_scale * rng.uniform(0.14, 0.26, (B, J)))).astype(np.int64)
    h = np.maximum(2, np.round(S * object_scale * rng.uniform(0.09, 0.17, (B, J)))).astype(np.int64)
    h = np.where(shape == 2, np.maximum(2, np.round(w * rng.uniform(0.9, 1.0, (B, J)))), h).astype(np.int64)
    active = np.arange(J)[None, :] < n[:, None]
    total = (h * active).sum(1)
    room = ybase  # rows 1..ybase are free above the floor contact row
    scale = np.minimum(1.0, (room - 1) / np.maximum(total, 1))
    h = np.maximum(2, np.floor(h * scale[:, None])).astype(np.int64)
    cx0 = S * rng.uniform(0.4, 0.6, B)
    dx = rng.uniform(-0.2, 0.2, (B, J)) * np.minimum(w, np.roll(w, 1, axis=1))
    dx[:, 0] = 0
    cx = cx0[:, None] + np.cumsum(dx, axis=1)
    left = np.clip(np.round(cx - w / 2.0).astype(np.int64), 0, S - w)
    bottom = np.zeros((B, J), np.int64)
    top = np.zeros((B, J), np.int64)
    b = ybase.copy()
    for j in range(J):
        bottom[:, j] = b
        top[:, j] = b - h[:, j] + 1
        b = top[:, j] - 1
    return {"h0": h0, "ybase": ybase, "n": n, "shape": shape, "w": w, "h": h, "left": left,
            "top": top, "bottom": bottom, "active": active,
            # a light wall over a darker floor: the floor line is always a clear colour edge
            "colour": _object_colours(rng, (B, J)), "wall": _muted_colours(rng, B, 0.55, 0.85),
            "floor": _muted_colours(rng, B, 0.3, 0.5)}


def _render_blocks_batch(p: dict, S: int) -> Scenes:
    B = len(p["n"])
    # the floor starts right under the bottom block
    p = dict(p, h0=np.minimum(p["h0"], p["ybase"] + 1))
    img = _background(p, S)
    lab = np.zeros((B, S, S), np.uint8)
    R = np.arange(S, dtype=np.float32)[None, :, None]
    C = np.arange(S, dtype=np.float32)[None, None, :]
    for j in range(p["w"].shape[1]):
        top = p["top"][:, j, None, None].astype(np.float32)
        bot = p["bottom"][:, j, None, None].astype(np.float32)
        lef = p["left"][:, j, None, None].astype(np.float32)
        w = p["w"][:, j, None, None].astype(np.float32)
        h = bot - top + 1
        rig = lef + w - 1
        shp = p["shape"][:, j, None, None]
        rect = (R >= top) & (R <= bot) & (C >= lef) & (C <= rig) & p["active"][:, j, None, None]
        u = (C + 0.5 - (lef + w / 2)) / (w / 2)
        v = (R + 0.5 - (top + h / 2)) / (h / 2)
        inside = rect & ((shp != 2) | (u * u + v * v <= 1.0))
        # cuboid: lit front face, darker side face, bright top strip
        strip = np.maximum(1, np.floor(h / 5))
        cub = np.where(C > lef + 0.72 * w, 0.72, 1.0 - 0.15 * (R - top) / h)
        cub = np.where(R < top + strip, 1.18, cub)
        # cylinder: cosine shading across, elliptic lighter cap
        capH = np.maximum(1, np.floor(h / 4))
        body = 0.55 + 0.5 * np.sqrt(np.clip(1 - u * u, 0, 1)) - 0.08 * u
        cap = u * u + ((R + 0.5 - (top + capH / 2)) / (capH / 2)) ** 2 <= 1.0
        cyl = np.where(cap, 1.15, body)
        # sphere: Lambertian-ish with a light from the upper left
        nz = np.sqrt(np.clip(1 - u * u - v * v, 0, 1))
        sph = 0.3 + 0.8 * np.clip(-0.35 * u - 0.45 * v + 0.82 * nz, 0, 1)
        shade = np.where(shp == 0, cub, np.where(shp == 1, cyl, sph)).astype(np.float32)
        col = p["colour"][:, j, None, None, :].astype(np.float32)
        img = np.where(inside[..., None], shade[..., None] * col, img)
        lab[inside] = j + 1
    images = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return Scenes(images, lab, p["n"].astype(np.uint8))


# ------------------------------------------------------------------------------------- shapes
def _shapes_params(rng: np.random.Generator, B: int, S: int) -> dict:
    J = 6
    h0 = np.floor(S * rng.uniform(0.25, 0.4, B)).astype(np.int64)
    n = rng.integers(3, 7, B)
    ybot = h0[:, None] + (S * 0.97 - h0[:, None] - 0.2 * S) * rng.random((B, J)) + 0.2 * S
    active = np.arange(J)[None, :] < n[:, None]
    ybot = np.where(active, ybot, -1.0)                    # inactive sort first, never drawn
    order = np.argsort(ybot, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    ybot, active = take(ybot), take(active)
    depth = (ybot - h0[:, None]) / (S - h0[:, None])
    r = S * (0.05 + 0.07 * depth) * rng.uniform(0.85, 1.15, (B, J))
    x = S * rng.uniform(0.1, 0.9, (B, J))
    return {"h0": h0, "n": n, "ybot": ybot, "active": active, "r": np.maximum(r, 1.5), "x": x,
            "shape": rng.integers(0, 3, (B, J)), "colour": _object_colours(rng, (B, J)),
            "wall": _muted_colours(rng, B), "floor": _muted_colours(rng, B)}


def _render_shapes_batch(p: dict, S: int) -> Scenes:
    B, J = p["r"].shape
    img = _background(p, S)
    lab = np.zeros((B, S, S), np.uint8)
    R = np.arange(S, dtype=np.float32)[None, :, None] + 0.5
    C = np.arange(S, dtype=np.float32)[None, None, :] + 0.5
    for j in range(J):
        r = p["r"][:, j, None, None].astype(np.float32)
        x = p["x"][:, j, None, None].astype(np.float32)
        yb = p["ybot"][:, j, None, None].astype(np.float32)
        shp = p["shape"][:, j, None, None]
        act = p["active"][:, j, None, None]
        u = (C - x) / r
        # sphere
        v = (R - (yb - r)) / r
        sph_in = u * u + v * v <= 1.0
        nz = np.sqrt(np.clip(1 - u * u - v * v, 0, 1))
        sph = 0.3 + 0.8 * np.clip(-0.35 * u - 0.45 * v + 0.82 * nz, 0, 1)
        # cube: front square plus a skewed top face
        side = 1.7 * r
        ftop = yb - side
        front = (np.abs(C - x) <= side / 2) & (R >= ftop) & (R <= yb)
        dz = ftop - R
        topf = (dz > 0) & (dz <= 0.45 * side) & (C - x - 0.6 * dz >= -side / 2) & (C - x - 0.6 * dz <= side / 2)
        cub_in = front | topf
        cub = np.where(topf, 1.15, np.where(C > x + 0.25 * side, 0.75, 0.95))
        # cylinder: body with elliptic top and bottom
        e = 0.35 * r
        ctop = yb - 2 * r
        body = (np.abs(u) <= 1) & (R >= ctop) & (R <= yb - e)
        bot_el = u * u + ((R - (yb - e)) / e) ** 2 <= 1.0
        top_el = u * u + ((R - ctop) / e) ** 2 <= 1.0
        cyl_in = body | bot_el | top_el
        cyl = np.where(top_el, 1.15, 0.55 + 0.5 * np.sqrt(np.clip(1 - u * u, 0, 1)) - 0.08 * u)
        inside = act & np.where(shp == 0, sph_in, np.where(shp == 1, cub_in, cyl_in))
        shade = np.where(shp == 0, sph, np.where(shp == 1, cub, cyl)).astype(np.float32)
        col = p["colour"][:, j, None, None, :].astype(np.float32)
        img = np.where(inside[..., None], shade[..., None] * col, img)
        lab[inside] = j + 1
    # renumber the visible objects 1..n in drawing order
    present = np.zeros((B, J + 1), bool)
    for k in range(1, J + 1):
        present[:, k] = (lab == k).any(axis=(1, 2))
    lut = np.zeros((B, J + 1), np.uint8)
    lut[:, 1:] = np.where(present[:, 1:], np.cumsum(present[:, 1:], axis=1), 0)
    lab = np.take_along_axis(lut, lab.reshape(B, -1).astype(np.int64), axis=1).reshape(B, S, S)
    images = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return Scenes(images, lab.astype(np.uint8), present[:, 1:].sum(1).astype(np.uint8))


_PARAMS = {"blocks": _blocks_params, "shapes": _shapes_params}
_RENDER = {"blocks": _render_blocks_batch, "shapes": _render_shapes_batch}


def generate(name: str, num: int, image_size: int = 64, seed: int = 0, start: int = 0,
             object_scale: float = 1.0) -> Scenes:
    """Scenes `start .. start+num-1` of the synthetic dataset `name` ("blocks" or "shapes").

    `object_scale` (blocks only) multiplies the blocks' widths and heights (towers taller than the
    room are squeezed as always); 1.0 is the default geometry.
    """
    if name not in _PARAMS:
        raise ValueError(f"unknown synthetic dataset {name!r}; expected one of {NAMES}")
    S = int(image_size)
    if S < 16:
        raise ValueError(f"image_size must be >= 16, got {S}")
    num, start = int(num), int(start)
    out_img = np.zeros((num, S, S, 3), np.uint8)
    out_msk = np.zeros((num, S, S), np.uint8)
    out_n = np.zeros(num, np.uint8)
    i = start
    while i < start + num:
        blk = i // _BLOCK
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), blk]))
        if object_scale != 1.0:
            if name != "blocks":
                raise ValueError("object_scale is an option of the blocks dataset only")
            params = _blocks_params(rng, _BLOCK, S, float(object_scale))
        else:
            params = _PARAMS[name](rng, _BLOCK, S)
        a, b = i - blk * _BLOCK, min(start + num - blk * _BLOCK, _BLOCK)
        for lo in range(a, b, _RENDER_BATCH):
            hi = min(lo + _RENDER_BATCH, b)
            sub = {k: (v[lo:hi] if isinstance(v, np.ndarray) else v) for k, v in params.items()}
            sc = _RENDER[name](sub, S)
            o = blk * _BLOCK + lo - start
            out_img[o:o + hi - lo], out_msk[o:o + hi - lo], out_n[o:o + hi - lo] = sc
        i = blk * _BLOCK + b
    return Scenes(out_img, out_msk, out_n)


def render_blocks(num: int, image_size: int = 64, seed: int = 0, start: int = 0) -> Scenes:
    """ShapeStacks-like tower scenes (see module doc for the exact touching geometry)."""
    return generate("blocks", num, image_size, seed, start)


def render_shapes(num: int, image_size: int = 64, seed: int = 0, start: int = 0) -> Scenes:
    """CLEVR-like scattered objects with occlusion."""
    return generate("shapes", num, image_size, seed, start)


def render_blocks_variant(num: int, image_size: int = 64, seed: int = 0, variant: str = "plain",
                          lift: int | None = None, object_scale: float = 1.0) -> Scenes:
    """`blocks` scenes of the same distribution, altered in one known way (validation sets).

    "plain": unaltered; "float": one block (not the lowest) and everything above it is lifted by
    `lift` rows (default max(2, size // 16)), so it floats; "missing": the top block is removed.
    Scenes with one block are kept as they are for "float" and "missing".
    """
    if variant not in ("plain", "float", "missing"):
        raise ValueError(f"variant must be 'plain', 'float' or 'missing', got {variant!r}")
    S = int(image_size)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    p = _blocks_params(rng, int(num), S, float(object_scale))
    n = p["n"]
    if variant == "float":
        lift = max(2, S // 16) if lift is None else int(lift)
        j = np.where(n >= 2, rng.integers(1, np.maximum(n, 2)), 99)  # first lifted block
        above = np.arange(p["top"].shape[1])[None, :] >= j[:, None]
        p["top"] = np.where(above, p["top"] - lift, p["top"])
        p["bottom"] = np.where(above, p["bottom"] - lift, p["bottom"])
        # keep the lifted blocks inside the image: drop those pushed off the top
        p["active"] = p["active"] & (p["top"] >= 0)
        p["n"] = p["active"].sum(1)
    elif variant == "missing":
        last = np.where(n >= 2, n - 1, 99)
        p["active"] = p["active"] & (np.arange(p["top"].shape[1])[None, :] != last[:, None])
        p["n"] = p["active"].sum(1)
    out = [_render_blocks_batch({k: (v[lo:lo + _RENDER_BATCH] if isinstance(v, np.ndarray) else v)
                                 for k, v in p.items()}, S)
           for lo in range(0, int(num), _RENDER_BATCH)]
    return Scenes(*(np.concatenate([o[i] for o in out]) for i in range(3)))
