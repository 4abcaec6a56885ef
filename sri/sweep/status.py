"""`sri sweep status`: one line per planned run, from the store (runs_frame), claims and squeue."""
from __future__ import annotations

from typing import Any, Sequence

from sri.sweep.claims import open_claims
from sri.sweep.launch import holder_alive
from sri.sweep.plan import PlannedRun
from sri.tracking.store import StoreSpec

STATUS_COLUMNS = ["row", "dataset", "seed", "state", "step", "job_id", "run_id", "sweep", "key"]


def _state(claim: dict[str, Any] | None, latest: Any, slurm: dict[str, str] | None) -> str:
    """queued / running / interrupted / failed / not submitted, for a run not COMPLETED in the store."""
    if claim is not None:
        job = str(claim.get("job_id") or "")
        if claim.get("launcher") == "slurm" and job and slurm is not None and job in slurm:
            return "running" if slurm[job] in ("RUNNING", "COMPLETING") else "queued"
        if holder_alive(claim, slurm):
            return "running" if claim.get("state") == "running" else "queued"
        # stopped at a checkpoint and not requeued: the next `sri sweep` resumes it (also when the
        # sweep process died and its run stopped on the SIGTERM that followed: the store says so)
        stopped = latest is not None and latest["status"] == "INTERRUPTED"
        return "interrupted" if claim.get("state") == "interrupted" or stopped else "failed"
    if latest is not None:
        return "running" if latest["status"] in ("RUNNING", "QUEUED") else "failed"
    return "not submitted"


def sweep_status(planned: Sequence[PlannedRun], store: StoreSpec) -> Any:
    """A pandas DataFrame, one row per planned run (STATUS_COLUMNS)."""
    import pandas as pd

    from sri.sweep.slurm import slurm_states
    from sri.tracking.frame import runs_frame

    try:
        frame = runs_frame(store)
    except FileNotFoundError:
        frame = runs_frame([])
    claims = open_claims(store)
    claim_of = {p.key: claims.get(p.key) for p in planned}
    slurm = slurm_states([c.get("job_id") for c in claim_of.values() if c and c.get("launcher") == "slurm"])
    by_key = {k: g for k, g in frame.groupby("config_key", sort=False)} if len(frame) else {}
    lines = []
    for p in planned:
        runs = by_key.get(p.key)
        done = runs[runs["status"] == "COMPLETED"] if runs is not None else None
        claim = claim_of[p.key]
        if done is not None and len(done):
            latest, state = done.iloc[-1], "completed"
        else:
            latest = runs.iloc[-1] if runs is not None and len(runs) else None
            state = _state(claim, latest, slurm)
        lines.append({"row": p.row, "dataset": p.dataset, "seed": p.seed, "state": state,
                      "step": None if latest is None or pd.isna(latest["step"]) else int(latest["step"]),
                      "job_id": (claim or {}).get("job_id"),
                      "run_id": None if latest is None else str(latest["id"]),
                      "sweep": (claim or {}).get("sweep") or (None if latest is None else latest["sweep"]),
                      "key": p.key})
    out = pd.DataFrame(lines, columns=STATUS_COLUMNS, dtype=object)
    out["step"] = out["step"].astype("Int64")
    return out


def render_status(status: Any) -> str:
    """The status table as text, with a count per state."""
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.width", 200):
        body = status.astype(object).where(status.notna(), "-").to_string(index=False)
    counts = status.groupby("state").size()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    return f"{body}\n{len(status)} planned: {summary}\n"
