"""Small stand-ins (model, data, train_step) for the trainer-mechanics tests and their subprocesses.

They follow the contracts of docs/ARCHITECTURE.md so that the trainer is exercised without the
cost of the real model; the real model is covered by the smoke tests.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from sri.objectives import GECO
from sri.train.trainer import Trainer


@dataclass
class TinyOutput:
    """Forward output (a dataclass, like the real ModelOutput, so DDP can find its tensors)."""

    terms: dict[str, torch.Tensor]
    recon: torch.Tensor


class TinyVAE(nn.Module):
    """A two-layer 'genv2'-named autoencoder with optional noise and injectable NaN losses."""

    name = "genv2"

    def __init__(self, image_size: int = 16, num_slots: int = 3, noise: float = 0.1) -> None:
        super().__init__()
        self.options = {"image_size": image_size, "num_slots": num_slots, "noise": noise}
        d = 3 * image_size * image_size
        self.enc = nn.Linear(d, 8)
        self.dec = nn.Linear(8, d)
        self.noise = noise
        self.calls = 0
        self.poison: set[int] = set()  # forward-call indices that return NaN terms

    def forward(self, x: torch.Tensor) -> TinyOutput:
        self.calls += 1
        h = self.enc(x.flatten(1))
        if self.noise:
            h = h + self.noise * torch.randn_like(h)
        recon = torch.sigmoid(self.dec(h))
        nll = ((recon - x.flatten(1)) ** 2).sum(1)
        kl = 0.01 * (h ** 2).sum(1)
        if self.calls in self.poison:
            nll = nll * float("nan")
        return TinyOutput(terms={"seg_nll": nll, "seg_kl": kl}, recon=recon.view_as(x))

    def sample(self, n: int, temperature: float = 1.0, num_slots: int | None = None,
               generator: torch.Generator | None = None) -> SimpleNamespace:
        s = self.options["image_size"]
        z = torch.randn(n, 8, generator=generator)
        img = torch.sigmoid(self.dec(z)).view(n, 3, s, s)
        masks = torch.softmax(torch.randn(n, 3, 1, s, s, generator=generator), 1)
        return SimpleNamespace(images=img, masks=masks, slot_images=img[:, None].expand(n, 3, 3, s, s))


class ImageSet(torch.utils.data.Dataset):
    """Deterministic random images as the data contract's dicts."""

    def __init__(self, n: int = 64, image_size: int = 16, seed: int = 123) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, image_size, image_size, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.x[i], "mask": torch.zeros(self.x.shape[-2:], dtype=torch.long),
                "num_objects": 0}


def standin_train_step(model, batch, optimizer, gecos, *, scaler=None, amp_dtype=None,
                       grad_clip=None) -> dict[str, float]:
    """One GECO-balanced step with the skip-on-non-finite rule of the contract."""
    out = model(batch["image"])
    err, kl = out.terms["seg_nll"].mean(), out.terms["seg_kl"].mean()
    loss = err + gecos["seg"].beta * kl
    optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        return {"loss": float("nan"), "seg_nll": float(err.detach()), "seg_kl": float(kl.detach()),
                "beta_seg": gecos["seg"].beta, "finite": 0.0}
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    gecos["seg"].update(err.detach())
    return {"loss": float(loss.detach()), "seg_nll": float(err.detach()), "seg_kl": float(kl.detach()),
            "beta_seg": gecos["seg"].beta, "finite": 1.0}


class StandInTrainer(Trainer):
    """Trainer wired to the stand-ins above."""

    noise = 0.1
    num_items = 64

    def build_model(self) -> nn.Module:
        mo = self.config["model_options"]
        self.tiny = TinyVAE(mo["image_size"], mo["num_slots"], noise=self.noise)
        return self.tiny

    def build_dataset(self, split: str = "train"):
        return ImageSet(self.num_items, self.config["model_options"]["image_size"])

    def make_gecos(self, model):
        c = self.config
        s = model.options["image_size"]
        return {"seg": GECO(c["geco_goal"] * 3 * s * s, c["geco_lr"] * 64 ** 2 / s ** 2,
                            alpha=c["geco_alpha"], speedup=c["geco_speedup"])}

    def train_step(self, model, batch, optimizer, gecos, **kw):
        return standin_train_step(model, batch, optimizer, gecos, **kw)

    def evaluate(self, model, metrics, *, final):
        x = ImageSet(8, self.config["model_options"]["image_size"], seed=9).x.to(self.device)
        return {m: float(model(x).terms["seg_nll"].mean()) for m in metrics}


def base_config(run_dir: str, **kw: Any) -> dict[str, Any]:
    """A tiny CPU config for the stand-in trainer."""
    cfg = {"model": "genv2", "dataset": "blocks", "model_options": {"image_size": 16, "num_slots": 3},
           "steps": 6, "batch_size": 4, "device": "cpu", "checkpoint_every": 3, "log_every": 1,
           "run_dir": run_dir, "final_metrics": ["nelbo_bpd"], "geco_goal": 0.05, "geco_lr": 1e-3,
           "seed": 3, "progress": False}
    cfg.update(kw)
    return cfg


def _main() -> None:
    """Subprocess entry: `python test_trainer_standins.py MODE RUN_DIR OUT [steps] [batch]`."""
    from sri.train.loggers import MemoryLogger

    mode, run_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 4

    class PrintLogger(MemoryLogger):
        def log_scalar(self, name, value, step):
            super().log_scalar(name, value, step)
            if name == "loss":
                print(f"STEP {step}", flush=True)

    if mode == "sigterm":
        cfg = base_config(run_dir, steps=100_000, checkpoint_every=0, log_every=1)
        StandInTrainer(cfg, logger=PrintLogger()).fit()
    elif mode == "ddp":
        StandInTrainer.noise = 0.0
        cfg = base_config(run_dir, steps=steps, batch_size=batch, checkpoint_every=0,
                          final_metrics=[])
        t = StandInTrainer(cfg, logger=MemoryLogger())
        t.fit()
        rank = int(os.environ.get("RANK", "0"))
        state = {"gecos": {k: g.state_dict() for k, g in t.gecos.items()}}
        torch.save({"params": {k: v.detach().clone() for k, v in t.tiny.state_dict().items()}, **state},
                   os.path.join(out, f"rank{rank}.pt"))
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump(state, f)


if __name__ == "__main__":
    _main()
