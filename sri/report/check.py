"""`make check-paper`: are our numbers within the paper's bands, and do its relative claims hold?"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sri.atomicio import atomic_open
from sri.report.paper import METRICS, PAPER_DATASETS, TABLES, PaperValue, load_paper_results
from sri.report.tables import Results, format_value

PASS, FAIL, MISSING, NO_PAPER = "pass", "fail", "missing", "no paper value"


@dataclass(frozen=True)
class Claim:
    """A relative claim: the groups of rows are ordered best-first on `metric` per dataset.

    Each group's value is its best row's mean; every row of every group needs a result.
    """

    table: int
    metric: str
    chain: tuple[tuple[str, ...], ...]
    datasets: tuple[str, ...]
    text: str


CLAIMS: tuple[Claim, ...] = (
    Claim(1, "fid", (("sri",), ("sri_sa",)), ("shapestacks",), "SRI's FID below SRI-SA*'s"),
    Claim(1, "ari_fg", (("sri",), ("sri_sa",)), ("shapestacks",), "SRI's ARI-FG above SRI-SA*'s"),
    Claim(1, "nelbo_bpd", (("sri",), ("sri_sa",)), ("shapestacks",), "SRI's -ELBO below SRI-SA*'s"),
    Claim(2, "fid", (("sri_g",), ("genv2_g",)), PAPER_DATASETS, "SRI-G's FID below GENv2-G's"),
    Claim(2, "fid", (("sri_mog",), ("genv2_mog",)), PAPER_DATASETS, "SRI-MoG's FID below GENv2-MoG's"),
    Claim(2, "fid", (("sri_g", "sri_mog"), ("emorl", "gen", "genv2_g", "genv2_mog")), PAPER_DATASETS,
          "the best SRI FID below every GENv2-based, GEN and EMORL FID"),
    Claim(2, "fid", (("sri_emorl",), ("emorl",)), ("clevr6",), "SRI-EMORL's FID below EMORL's"),
    Claim(2, "s_acc", (("sri_g",), ("genv2_g",)), ("shapestacks",), "SRI-G's S-Acc above GENv2-G's"),
    Claim(2, "s_acc", (("sri_mog",), ("genv2_mog",)), ("shapestacks",),
          "SRI-MoG's S-Acc above GENv2-MoG's"),
    Claim(3, "fid", (("d",), ("c",), ("b",), ("a",)), ("shapestacks",), "ablation FIDs d < c < b < a"),
    Claim(3, "s_acc", (("d",), ("c",), ("b",), ("a",)), ("shapestacks",),
          "ablation S-Acc d > c > b > a"),
    Claim(4, "fid", (("sri",), ("genv2_scene",), ("genv2",)), ("shapestacks",),
          "FID: SRI < GENv2 + scene variable < GENv2"),
    Claim(4, "fid", (("gen_scene",), ("gen",)), ("shapestacks",), "FID: GEN + scene variable < GEN"),
    Claim(4, "s_acc", (("sri",), ("genv2_scene",), ("genv2",)), ("shapestacks",),
          "S-Acc: SRI > GENv2 + scene variable > GENv2"),
)


@dataclass
class Check:
    """One line of the report."""

    kind: str  # "value" or "claim"
    table: int
    what: str
    dataset: str
    metric: str
    ours: str
    paper: str
    status: str
    detail: str = ""


def provenance(cell: Any) -> str:
    """Preset(s) and training steps of the runs behind a cell, e.g. "paper, 500000 steps"."""
    presets = sorted(set(getattr(cell, "presets", []) or [])) or ["?"]
    steps = sorted({s for s in getattr(cell, "steps", []) or [] if s is not None})
    steps_text = (f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}") if steps else "?"
    return f"{'/'.join(presets)}, {steps_text} steps"


def band(pv: PaperValue, rel_tol: float) -> float:
    """Half-width of the paper's band: 2 std, or `rel_tol` × |mean| where no (or a zero) std is given."""
    if pv.std is not None and pv.std > 0:
        return 2.0 * pv.std
    return rel_tol * abs(pv.mean)


def check_values(results: Results, paper: dict[tuple[int, str, str, str], PaperValue],
                 rel_tol: float = 0.1) -> list[Check]:
    """Compare every (table, row, dataset, metric) mean with the paper's band."""
    checks = []
    keys = sorted(set(paper) | set(results), key=lambda k: (k[0], _row_pos(k[0], k[1]), k[2], k[3]))
    for key in keys:
        table, row, dataset, metric = key
        if table not in TABLES:
            continue
        cell, pv = results.get(key), paper.get(key)
        label = TABLES[table].paper_row(row)
        ours = (f"{format_value(metric, cell.mean)} ± {format_value(metric, cell.std)} (n={cell.n}; "
                f"{provenance(cell)})" if cell else "")
        if pv is None:
            checks.append(Check("value", table, label, dataset, metric, ours, "", NO_PAPER))
            continue
        width = band(pv, rel_tol)
        std_text = f" ± {format_value(metric, pv.std)}" if pv.std is not None else ""
        paper_text = f"{format_value(metric, pv.mean)}{std_text}"
        lo, hi = pv.mean - width, pv.mean + width
        rule = "2 std" if pv.std else f"{rel_tol:.0%}"
        detail = f"band [{format_value(metric, lo)}, {format_value(metric, hi)}] ({rule})"
        if cell is None:
            checks.append(Check("value", table, label, dataset, metric, "", paper_text, MISSING, detail))
            continue
        ok = lo - 1e-12 <= cell.mean <= hi + 1e-12
        checks.append(Check("value", table, label, dataset, metric, ours, paper_text,
                            PASS if ok else FAIL, detail))
    return checks


def _row_pos(table: int, row: str) -> int:
    rows = list(TABLES[table].rows) if table in TABLES else []
    return rows.index(row) if row in rows else len(rows)


def check_claims(results: Results, paper: dict[tuple[int, str, str, str], PaperValue],
                 claims: Sequence[Claim] = CLAIMS, all_datasets: bool = False) -> list[Check]:
    """Evaluate each claim on our means (and, for reference, on the paper's)."""
    checks = []
    ours_datasets = sorted({k[2] for k in results})
    for claim in claims:
        lower = METRICS[claim.metric].lower_is_better
        datasets = list(claim.datasets)
        if all_datasets:
            datasets += [d for d in ours_datasets if d not in PAPER_DATASETS]
        for dataset in datasets:
            def group_value(source: dict, group: tuple[str, ...], mean_of) -> float | None:
                vals = []
                for row in group:
                    item = source.get((claim.table, row, dataset, claim.metric))
                    if item is None:
                        return None
                    vals.append(mean_of(item))
                return min(vals) if lower else max(vals)

            ours = [group_value(results, g, lambda c: c.mean) for g in claim.chain]
            theirs = [group_value(paper, g, lambda p: p.mean) for g in claim.chain]
            show = lambda vals: " | ".join("?" if v is None else format_value(claim.metric, v) for v in vals)
            if any(v is None for v in ours):
                status = MISSING
            else:
                pairs = zip(ours, ours[1:])
                ok = all((a < b) if lower else (a > b) for a, b in pairs)
                status = PASS if ok else FAIL
            groups = " vs ".join("/".join(g) for g in claim.chain)
            checks.append(Check("claim", claim.table, claim.text, dataset, claim.metric, show(ours),
                                show(theirs), status, groups))
    return checks


def run_check(results: Results, *, rel_tol: float = 0.1, all_datasets: bool = False,
              paper: dict[tuple[int, str, str, str], PaperValue] | None = None) -> list[Check]:
    """All value checks and claim checks."""
    paper = load_paper_results() if paper is None else paper
    return check_values(results, paper, rel_tol) + check_claims(results, paper, CLAIMS, all_datasets)


def render_checks(checks: Sequence[Check], show_missing: bool = True) -> str:
    """A Markdown pass/fail/missing table with a summary line."""
    lines = ["| kind | table | row / claim | dataset | metric | ours | paper | status | detail |",
             "| --- | ---: | --- | --- | --- | ---: | ---: | --- | --- |"]
    for c in checks:
        if c.status == MISSING and not show_missing:
            continue
        status = c.status.upper() if c.status == FAIL else c.status
        lines.append(f"| {c.kind} | {c.table} | {c.what} | {c.dataset} | {c.metric} | {c.ours} | "
                     f"{c.paper} | {status} | {c.detail} |")
    counts = {s: sum(c.status == s for c in checks) for s in (PASS, FAIL, MISSING, NO_PAPER)}
    lines += ["", f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[MISSING]} missing, "
                  f"{counts[NO_PAPER]} without a paper value"]
    return "\n".join(lines) + "\n"


def write_checks(checks: Sequence[Check], path: str | os.PathLike) -> Path:
    """The checks as CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["kind", "table", "what", "dataset", "metric", "ours", "paper", "status", "detail"]
    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for c in checks:
            w.writerow([getattr(c, k) for k in fields])
    return path


def exit_status(checks: Sequence[Check], strict: bool = False) -> int:
    """1 if any check failed (or, with `strict`, is missing), else 0."""
    bad = {FAIL, MISSING} if strict else {FAIL}
    return 1 if any(c.status in bad for c in checks) else 0
