"""FID with torch-fidelity's feature extractors, in memory, without needing torchvision.

torch-fidelity 0.4.0 imports torchvision at the top of its package (`torch_fidelity/__init__.py`
pulls in the CLIP, VGG and DINOv2 extractors and the CIFAR/STL datasets), and the only
torchvision wheel for our torch build cannot be imported on CPU. The parts FID needs do not use
torchvision: `feature_extractor_base`, `feature_extractor_inceptionv3` (the standard
TF-compatible Inception pool3 features) and their helpers. `torch_fidelity_api()` therefore
tries the real package first and, when that import fails, installs a documented shim: a bare
`torch_fidelity` package object in `sys.modules` (its `__path__` points at the installed files,
its `__init__` is not run) from which those submodules import normally, plus a feature
extractor registry with torch-fidelity's `register_feature_extractor` semantics, pre-filled with
`"inception-v3-compat"`. Any other attribute of the shim raises an AttributeError that says why.
The Fréchet distance is computed here (float64, symmetric square root) and checked against
scipy in the tests.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from sri.checksums import file_sha256

INCEPTION_NAME = "inception-v3-compat"
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                         + INCEPTION_WEIGHTS_FILE)
# The first 8 hex digits of the file's SHA-256, as its name carries them (torch hub's convention,
# which torch-fidelity follows). The full SHA-256 could not be computed where this was written (no
# network there); set INCEPTION_WEIGHTS_SHA256 to it to check every byte.
INCEPTION_WEIGHTS_SHA256_PREFIX = "6726825d"
INCEPTION_WEIGHTS_SHA256: str | None = None
WEIGHTS_ENV = "SRI_INCEPTION_WEIGHTS"
CACHE_ENV = "SRI_FID_CACHE"
# set to 1 (e.g. on cluster nodes) to forbid any download; the run then says what to copy where
OFFLINE_ENV = "SRI_OFFLINE"


class InceptionWeightsMissing(FileNotFoundError):
    """The Inception weights file for FID is not on this machine and could not be downloaded."""


@dataclass
class TorchFidelityAPI:
    """The torch-fidelity pieces FID uses; `full` is False when running on the no-torchvision shim."""
    FeatureExtractorBase: type
    FeatureExtractorInceptionV3: type
    registry: dict
    register_feature_extractor: Callable[[str, type], None]
    full: bool
    reason: str = ""


_API: TorchFidelityAPI | None = None


def _shim_register(registry: dict, base: type) -> Callable[[str, type], None]:
    def register_feature_extractor(name: str, cls: type) -> None:
        """Register a FeatureExtractorBase subclass under a unique name (torch-fidelity semantics)."""
        if type(name) is not str or name.strip() != name or os.path.sep in name:
            raise ValueError(f"feature extractor name must be a string without surrounding spaces or "
                             f"path separators, got {name!r}")
        if name in registry:
            raise ValueError(f'Feature extractor "{name}" is already registered')
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError("Feature extractor class must be subclassed from "
                            "torch_fidelity.feature_extractor_base.FeatureExtractorBase")
        registry[name] = cls
    return register_feature_extractor


def torch_fidelity_api() -> TorchFidelityAPI:
    """Import torch-fidelity, falling back to the torchvision-free shim described in the module doc."""
    global _API
    if _API is not None:
        return _API
    reason = ""
    try:
        import torch_fidelity  # noqa: F401  (needs a working torchvision)
        from torch_fidelity.feature_extractor_base import FeatureExtractorBase
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
        if not getattr(torch_fidelity, "__sri_shim__", None):
            _API = TorchFidelityAPI(FeatureExtractorBase, FeatureExtractorInceptionV3,
                                    FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor, True)
            return _API
    except Exception as e:  # torchvision absent or broken (e.g. a CUDA wheel on CPU torch)
        reason = f"{type(e).__name__}: {e}"
    pkg = sys.modules.get("torch_fidelity")
    if pkg is not None and getattr(pkg, "__sri_shim__", None):
        reason = pkg.__sri_shim__
    elif pkg is None:
        spec = importlib.util.find_spec("torch_fidelity")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("torch-fidelity is not installed; install it without its torchvision "
                              "dependency: pip install --no-deps torch-fidelity==0.4.0")
        pkg = types.ModuleType("torch_fidelity", "sri shim for torch-fidelity without torchvision "
                                                 "(see sri/metrics/fid.py)")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__file__ = spec.origin
        pkg.__sri_shim__ = reason

        def __getattr__(name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            raise AttributeError(f"torch_fidelity.{name} is unavailable: the full torch-fidelity "
                                 f"package needs torchvision ({reason}); sri loaded only its FID "
                                 f"feature extractor modules (sri.metrics.fid)")
        pkg.__getattr__ = __getattr__
        sys.modules["torch_fidelity"] = pkg
    base = importlib.import_module("torch_fidelity.feature_extractor_base").FeatureExtractorBase
    inception = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3").FeatureExtractorInceptionV3
    registry = pkg.__dict__.setdefault("__sri_registry__", {INCEPTION_NAME: inception})
    register = _shim_register(registry, base)
    pkg.FeatureExtractorBase = base
    pkg.FeatureExtractorInceptionV3 = inception
    pkg.register_feature_extractor = register
    _API = TorchFidelityAPI(base, inception, registry, register, False, reason)
    return _API


def register_feature_extractor(name: str, cls: type) -> None:
    """Register a torch-fidelity FeatureExtractorBase subclass for FID under `name`."""
    torch_fidelity_api().register_feature_extractor(name, cls)


def feature_extractor_class(name: str) -> type:
    """The registered feature extractor class for `name`, with a clear error if unknown."""
    api = torch_fidelity_api()
    if name not in api.registry:
        extra = "" if api.full else (" (torch-fidelity's torchvision-based extractors are unavailable: "
                                     + api.reason + ")")
        raise KeyError(f"unknown feature extractor {name!r}; registered: {sorted(api.registry)}{extra}. "
                       f"Register your own with sri.metrics.register_feature_extractor(name, cls).")
    return api.registry[name]


def default_inception_weights_path() -> Path:
    """Where torch-fidelity caches the Inception weights: <torch hub dir>/checkpoints/<file>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def download_inception_weights(dest: str | os.PathLike | None = None, *, url: str = INCEPTION_WEIGHTS_URL,
                               sha256: str | None = INCEPTION_WEIGHTS_SHA256,
                               sha256_prefix: str | None = INCEPTION_WEIGHTS_SHA256_PREFIX,
                               progress: bool = True, timeout: float = 60.0) -> Path:
    """Download the Inception weights to `dest` (default: torch hub's cache) with a progress bar,
    check the SHA-256 (the full hash when pinned, else the pinned prefix), move the file into place
    atomically. InceptionWeightsMissing says what failed: no network, or a hash mismatch (the file
    is then deleted)."""
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    dest = Path(dest) if dest is not None else default_inception_weights_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as out:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}",
                      disable=not progress, file=sys.stderr) as bar:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        raise InceptionWeightsMissing(f"downloading {url} failed (no network? {type(e).__name__}: {e})") from None
    got = file_sha256(tmp)
    ok = got == sha256 if sha256 else (got.startswith(sha256_prefix) if sha256_prefix else True)
    if not ok:
        tmp.unlink(missing_ok=True)
        want = sha256 or f"{sha256_prefix}..."
        raise InceptionWeightsMissing(f"downloaded {url} but its SHA-256 is {got}, not {want}: hash mismatch "
                                      f"(a wrong or tampered file); it was deleted")
    os.replace(tmp, dest)
    return dest


def resolve_inception_weights(path: str | os.PathLike | None = None, *, download: bool | None = None) -> Path:
    """Inception weights: `path`, else $SRI_INCEPTION_WEIGHTS, else torch-fidelity's cache file,
    downloaded there on first use unless `download` is False or $SRI_OFFLINE=1."""
    if path is not None:
        source = "the given path"
    elif os.environ.get(WEIGHTS_ENV):
        path, source = os.environ[WEIGHTS_ENV], f"${WEIGHTS_ENV}"
    else:
        path, source = default_inception_weights_path(), "torch-fidelity's cache location"
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if download is None:
        download = os.environ.get(OFFLINE_ENV, "") not in ("1", "true", "yes")
    why = f"downloads are off ({OFFLINE_ENV}=1 or --no-download-weights)"
    if download and source == "torch-fidelity's cache location":
        try:
            return download_inception_weights(path)
        except InceptionWeightsMissing as e:
            why = str(e)
    elif download:
        why = f"a path was given ({source}), so nothing was downloaded"
    raise InceptionWeightsMissing(
        f"Inception weights for FID not found at {path} ({source}); {why}. Fetch "
        f"{INCEPTION_WEIGHTS_URL} on a machine with a network and put the file {INCEPTION_WEIGHTS_FILE} at "
        f"{default_inception_weights_path()}, or pass it as `sri evaluate --inception-weights PATH`, "
        f"`with inception_weights=PATH` to the table scripts in experiments/, or set {WEIGHTS_ENV}=PATH. "
        f"To test the FID pipeline without them, register a small feature extractor and pass "
        f"--feature-extractor NAME (fid_feature_extractor=NAME for the table scripts).")


def build_feature_extractor(name: str = INCEPTION_NAME, *, weights: str | os.PathLike | None = None,
                            device: str | torch.device | None = None, **kwargs: Any) -> nn.Module:
    """Instantiate a registered extractor producing its default FID feature layer, in eval mode."""
    cls = feature_extractor_class(name)
    if issubclass(cls, torch_fidelity_api().FeatureExtractorInceptionV3):
        # Never hand torch-fidelity a None path: it would try to download the weights.
        kwargs["feature_extractor_weights_path"] = str(resolve_inception_weights(weights))
    layer = cls.get_default_feature_layer_for_metric("fid")
    extractor = cls(name, [layer], **kwargs)
    extractor.requires_grad_(False)
    extractor.eval()
    return extractor.to(device) if device is not None else extractor


def quantize_uint8(images: Tensor) -> Tensor:
    """Float images in [0,1] -> uint8 as an 8-bit PNG would store them (round half up, clamped)."""
    if images.dtype == torch.uint8:
        return images
    return torch.floor(images.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)


@torch.no_grad()
def extract_features(extractor: nn.Module, batches: Iterable[Tensor], *,
                     device: str | torch.device | None = None) -> Tensor:
    """Run the extractor over batches of [B,3,H,W] images (uint8, or floats in [0,1]) -> [N,D] float64 on CPU."""
    if device is None:
        device = next(iter(extractor.parameters()), torch.empty(0)).device
    out = []
    for x in batches:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"FID expects RGB image batches [B,3,H,W], got {tuple(x.shape)}")
        feats = extractor(quantize_uint8(x).to(device))
        feats = feats[0] if isinstance(feats, (tuple, list)) else feats
        out.append(feats.reshape(feats.shape[0], -1).to(torch.float64).cpu())
    if not out:
        raise ValueError("no images were given for FID")
    return torch.cat(out)


@dataclass
class FIDStats:
    """Gaussian statistics of a feature set: mean [D], covariance [D,D] (float64), sample count."""
    mu: np.ndarray
    sigma: np.ndarray
    count: int

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> None:
        """Write as .npz (atomically), with optional JSON metadata."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, mu=self.mu, sigma=self.sigma, count=self.count, meta=json.dumps(meta or {}))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FIDStats":
        """Read statistics written by `save`."""
        with np.load(path) as f:
            return cls(f["mu"], f["sigma"], int(f["count"]))


def feature_statistics(features: Tensor | np.ndarray) -> FIDStats:
    """Mean and unbiased covariance (as numpy.cov) of [N,D] features, in float64."""
    f = np.asarray(torch.as_tensor(features).detach().cpu(), dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need [N,D] features with N >= 2 for a covariance, got shape {f.shape}")
    return FIDStats(f.mean(0), np.atleast_2d(np.cov(f, rowvar=False)), f.shape[0])


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1-mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2) between two Gaussians.

    tr((S1 S2)^1/2) is taken as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix S1^1/2 S2 S1^1/2 (same spectrum as S1 S2), which stays real for singular covariances.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def fid_from_stats(a: FIDStats, b: FIDStats) -> float:
    """Fréchet distance between two FIDStats."""
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def _batches(images: Tensor, batch_size: int) -> Iterable[Tensor]:
    for i in range(0, images.shape[0], batch_size):
        yield images[i:i + batch_size]


def fid_between(real: Tensor, fake: Tensor, *, feature_extractor: str | nn.Module = INCEPTION_NAME,
                device: str | torch.device | None = None, batch_size: int = 64,
                inception_weights: str | os.PathLike | None = None) -> float:
    """FID between two in-memory image sets [N,3,H,W] (uint8, or floats in [0,1] quantised alike)."""
    ext = (feature_extractor if isinstance(feature_extractor, nn.Module)
           else build_feature_extractor(feature_extractor, weights=inception_weights, device=device))
    fa = extract_features(ext, _batches(real, batch_size), device=device)
    fb = extract_features(ext, _batches(fake, batch_size), device=device)
    return fid_from_stats(feature_statistics(fa), feature_statistics(fb))


def default_cache_dir() -> Path:
    """$SRI_FID_CACHE, else $XDG_CACHE_HOME/sri/fid_stats (~/.cache/sri/fid_stats)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sri" / "fid_stats"


def stats_cache_path(key: dict, cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache file for statistics identified by `key` (dataset, split, extractor, count, ...)."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    readable = "-".join(str(key[k]) for k in ("dataset", "split", "feature_extractor", "count") if k in key)
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in readable)
    return Path(cache_dir or default_cache_dir()) / f"{readable}-{digest}.npz"


def cached_stats(key: dict, compute: Callable[[], FIDStats],
                 cache_dir: str | os.PathLike | None = None, use_cache: bool = True) -> tuple[FIDStats, bool]:
    """Load statistics for `key` from the cache or compute and store them; returns (stats, was_cached)."""
    path = stats_cache_path(key, cache_dir)
    if use_cache and path.is_file():
        try:
            return FIDStats.load(path), True
        except Exception:  # unreadable cache entry: recompute and overwrite
            pass
    stats = compute()
    if use_cache:
        stats.save(path, key)
    return stats, False


def image_fingerprint(images: Tensor) -> str:
    """Short hash of a few uint8-quantised images, so cached statistics notice changed data."""
    return hashlib.sha1(quantize_uint8(images).cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def extractor_fingerprint(extractor: nn.Module, images: Tensor) -> str:
    """Short hash of the extractor's features of a few images (rounded), so cached statistics
    notice an extractor whose weights or feature size changed under the same name."""
    feats = extract_features(extractor, [images[:4]])
    return hashlib.sha1(np.round(feats.numpy(), 4).tobytes() + str(feats.shape).encode()).hexdigest()[:16]


__all__ = [
    "INCEPTION_NAME", "INCEPTION_WEIGHTS_FILE", "INCEPTION_WEIGHTS_URL", "WEIGHTS_ENV", "CACHE_ENV",
    "InceptionWeightsMissing", "TorchFidelityAPI", "torch_fidelity_api", "register_feature_extractor",
    "feature_extractor_class", "default_inception_weights_path", "resolve_inception_weights",
    "build_feature_extractor", "quantize_uint8", "extract_features", "FIDStats", "feature_statistics",
    "frechet_distance", "fid_from_stats", "fid_between", "default_cache_dir", "stats_cache_path",
    "cached_stats", "image_fingerprint", "extractor_fingerprint",
]
