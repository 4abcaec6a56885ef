"""Datasets: converters of the official formats into a fast local cache, synthetic scenes, `build_dataset`.

`build_dataset(name, root, split)` returns a torch Dataset of dicts `image` float [3,H,W] in
[0,1], `mask` long [H,W] (0 = background, 1..n objects) and `num_objects` (int).
Real datasets (`clevr6`, `objects_room`, `shapestacks`) come from a cache made by
`sri data convert` / `sri data download`; synthetic ones (`blocks`, `shapes`) from a cache
made by `sri data synth`, or are generated on the fly when `root` is None.
"""
from __future__ import annotations

import os
from typing import Any

from torch.utils.data import Dataset

from sri.data.errors import DataError

REAL = ("clevr6", "objects_room", "shapestacks")
SYNTHETIC = ("blocks", "shapes")
DATASETS = REAL + SYNTHETIC

__all__ = ["DataError", "build_dataset", "DATASETS", "REAL", "SYNTHETIC"]


def build_dataset(name: str, root: str | os.PathLike | None = None, split: str = "train", *,
                  num: int | None = None, image_size: int | None = None, seed: int = 0,
                  object_scale: float = 1.0, **kw: Any) -> Dataset:
    """The `split` ("train", "val", "test") of dataset `name` as a torch Dataset of item dicts.

    `root`: the cache directory (or its parent holding `<name>/`). Synthetic datasets with
    `root=None` are generated in memory: `num` scenes (default 1000) of `image_size` (default 64)
    from a split-specific seed derived from `seed`. `num` also caps the size of a cached split.
    """
    from sri.data.cache import ArrayDataset, CacheDataset, resolve_cache
    from sri.data.synthetic import generate, split_seed

    if kw:
        raise TypeError(f"build_dataset got unexpected options {sorted(kw)}")
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}; expected 'train', 'val' or 'test'")
    if root is None:
        if name in REAL:
            from sri.data.cache import make_command_hint
            raise DataError(f"dataset {name!r} needs root= (a converted cache directory, e.g. data/{name}). "
                            f"Create it with: {make_command_hint(name, os.path.join('data', name))}")
        size = 64 if image_size is None else int(image_size)
        scenes = generate(name, 1000 if num is None else int(num), size, split_seed(seed, split),
                          object_scale=object_scale)
        return ArrayDataset(*scenes)
    if object_scale != 1.0:
        raise DataError("object_scale applies to synthetic data generated on the fly (root=None), "
                        "not to a converted cache")
    path = resolve_cache(name, root)
    ds = CacheDataset(path, split, num)
    if image_size is not None and int(image_size) != ds.image_size:
        raise DataError(f"{path} holds {ds.image_size}x{ds.image_size} images, not {image_size}; "
                        "re-create the cache with the wanted size or drop image_size")
    return ds
