"""Tables from hand-made runs: selection, aggregation (vs numpy), CSV/Markdown, paper check."""
from __future__ import annotations

import csv
import datetime as dt

import numpy as np
import pytest
from test_report_util import write_run

from sri.report.check import (
    CLAIMS,
    FAIL,
    MISSING,
    NO_PAPER,
    PASS,
    band,
    check_claims,
    check_values,
    exit_status,
    render_checks,
    run_check,
)
from sri.report.paper import TABLES, PaperValue, load_paper_results
from sri.report.tables import build_tables, collect_results, select_runs
from sri.tracking import load_runs


def _fill(store):
    """Table 2 sri_g/genv2_g on shapestacks (3 seeds each) plus distractors that must be ignored."""
    fids = {"sri_g": [74.0, 70.0, 81.0], "genv2_g": [110.0, 118.0, 121.0]}
    aris = {"sri_g": [0.70, 0.69, 0.72], "genv2_g": [0.68, 0.66, 0.70]}
    saccs = {"sri_g": [0.72, 0.75, 0.70], "genv2_g": [0.50, 0.49, 0.55]}  # fractions
    i = 1
    for row in ("sri_g", "genv2_g"):
        for seed in range(3):
            write_run(store, i, table=2, row=row, dataset="shapestacks", seed=seed,
                      metrics={"fid": fids[row][seed], "ari_fg": aris[row][seed],
                               "s_acc": saccs[row][seed], "loss": [(0, 9.0), (5, 1.0)],
                               "order_consistency": 0.5 + 0.1 * seed},
                      model="genv2" if row.startswith("genv2") else "sri")
            i += 1
    # An older run of the same (row, dataset, seed) with a different value: superseded.
    write_run(store, 100, table=2, row="sri_g", dataset="shapestacks", seed=0, metrics={"fid": 999.0},
              start=dt.datetime(2023, 1, 1))
    # Failed, running and metric-less runs: ignored.
    write_run(store, 101, table=2, row="sri_g", dataset="shapestacks", seed=5,
              metrics={"fid": 1.0}, status="FAILED")
    write_run(store, 102, table=2, row="sri_g", dataset="shapestacks", seed=6,
              metrics={"fid": 1.0}, status="RUNNING")
    write_run(store, 103, table=2, row="sri_g", dataset="shapestacks", seed=7, metrics={"loss": 1.0})
    # A synthetic-dataset run (no paper value) in table 3.
    write_run(store, 104, table=3, row="d", dataset="blocks", seed=0, metrics={"fid": 30.0})
    return fids, aris, saccs


def test_aggregation_matches_numpy(tmp_path):
    fids, aris, saccs = _fill(tmp_path)
    results = collect_results(load_runs(tmp_path), order="logged")
    for row in ("sri_g", "genv2_g"):
        c = results[(2, row, "shapestacks", "fid")]
        assert c.n == 3 and sorted(c.seeds) == [0, 1, 2]
        assert c.mean == pytest.approx(np.mean(fids[row]), abs=1e-12)
        assert c.std == pytest.approx(np.std(fids[row]), abs=1e-12)
        c = results[(2, row, "shapestacks", "ari_fg")]
        assert c.std == pytest.approx(np.std(aris[row]), abs=1e-12)
        c = results[(2, row, "shapestacks", "s_acc")]  # fraction → percent
        assert c.mean == pytest.approx(100 * np.mean(saccs[row]), abs=1e-9)
        assert c.std == pytest.approx(100 * np.std(saccs[row]), abs=1e-9)
        c = results[(2, row, "shapestacks", "order_consistency")]
        assert c.mean == pytest.approx(np.mean([0.5, 0.6, 0.7]))
    assert (2, "sri_g", "shapestacks", "loss") not in results
    assert results[(3, "d", "blocks", "fid")].values == [30.0]
    # Without latest-only selection the superseded run counts too.
    everything = collect_results(load_runs(tmp_path), order="logged", latest_only=False)
    assert everything[(2, "sri_g", "shapestacks", "fid")].n == 4


def test_paper_std_convention_is_population_std():
    """The paper's Table 1 per-seed numbers give its std: numpy's default ddof=0."""
    paper = load_paper_results()
    assert np.std([79, 97, 263]) == pytest.approx(paper[(1, "sri_sa", "shapestacks", "fid")].std, abs=0.5)
    assert np.std([0.82, 0.36, 0.05]) == pytest.approx(
        paper[(1, "sri_sa", "shapestacks", "ari_fg")].std, abs=0.001)


def test_paper_rows_are_mapped():
    paper = load_paper_results()
    assert paper[(2, "sri_g", "shapestacks", "fid")] == PaperValue(74.7, 5.0, "")
    assert paper[(4, "genv2", "shapestacks", "fid")].std is None
    assert paper[(3, "a", "shapestacks", "s_acc")].mean == 31.7
    assert {k[1] for k in paper if k[0] == 4} == set(TABLES[4].rows)
    assert {k[1] for k in paper if k[0] == 2} == set(TABLES[2].rows)


def test_select_runs_latest(tmp_path):
    _fill(tmp_path)
    chosen = select_runs(load_runs(tmp_path))
    assert 100 not in [r.id for r in chosen] and 1 in [r.id for r in chosen]
    assert not {101, 102, 103} & {r.id for r in chosen}


def test_write_tables_csv_and_markdown(tmp_path):
    fids, _, _ = _fill(tmp_path / "runs")
    results, paths = build_tables(tmp_path / "runs", tmp_path / "tables", order="logged")
    names = sorted(p.name for p in paths)
    assert names == sorted([f"table{n}.{e}" for n in (1, 2, 3, 4) for e in ("csv", "md")])
    with open(tmp_path / "tables" / "table2.csv") as f:
        lines = list(csv.DictReader(f))
    (sri_fid,) = [l for l in lines if l["row"] == "sri_g" and l["dataset"] == "shapestacks"
                  and l["metric"] == "fid"]
    assert sri_fid["paper_row"] == "SRI-G" and sri_fid["n"] == "3"
    assert float(sri_fid["mean"]) == pytest.approx(np.mean(fids["sri_g"]))
    assert float(sri_fid["std"]) == pytest.approx(np.std(fids["sri_g"]))
    assert (float(sri_fid["paper_mean"]), float(sri_fid["paper_std"])) == (74.7, 5.0)
    # Paper-only entries are listed with n = 0.
    (emorl,) = [l for l in lines if l["row"] == "emorl" and l["dataset"] == "clevr6" and l["metric"] == "fid"]
    assert emorl["n"] == "0" and emorl["mean"] == "" and float(emorl["paper_mean"]) == 244.0
    md = (tmp_path / "tables" / "table2.md").read_text()
    assert "| SRI-G (`sri_g`) |" in md
    assert f"{np.mean(fids['sri_g']):.1f} ± {np.std(fids['sri_g']):.1f} (n=3)" in md
    assert "ShapeStacks Order consistency" in md and "74.7 ± 5.0" in md
    t3 = list(csv.DictReader(open(tmp_path / "tables" / "table3.csv")))
    (blocks,) = [l for l in t3 if l["dataset"] == "blocks"]
    assert blocks["paper_mean"] == "" and float(blocks["mean"]) == 30.0
    assert "Blocks (synthetic) FID" in (tmp_path / "tables" / "table3.md").read_text()


def test_band_rule():
    assert band(PaperValue(70.0, 3.0), 0.1) == 6.0
    assert band(PaperValue(107.4, None), 0.1) == pytest.approx(10.74)
    assert band(PaperValue(0.98, 0.0), 0.05) == pytest.approx(0.049)


def _results(tmp_path, values):
    """values: {(table,row,dataset): {metric: [per-seed values]}} → Results via hand-made runs."""
    i = 1
    for (table, row, dataset), metrics in values.items():
        n = len(next(iter(metrics.values())))
        for seed in range(n):
            write_run(tmp_path, i, table=table, row=row, dataset=dataset, seed=seed,
                      metrics={m: v[seed] for m, v in metrics.items()})
            i += 1
    return collect_results(load_runs(tmp_path), order="off")


def test_check_values_pass_fail_missing(tmp_path):
    results = _results(tmp_path, {
        (2, "sri_g", "shapestacks"): {"fid": [80.0, 82.0, 84.0]},      # 82 in 74.7 ± 10: pass
        (2, "genv2_g", "shapestacks"): {"fid": [140.0, 141.0, 142.0]},  # 141 > 115.3 + 12: fail
        (4, "genv2", "shapestacks"): {"fid": [117.0]},                   # no std: 107.4 ± 10.74: pass
        (3, "d", "blocks"): {"fid": [10.0]},                             # no paper value
    })
    checks = check_values(results, load_paper_results(), rel_tol=0.1)
    by = {(c.table, c.what, c.dataset, c.metric): c.status for c in checks}
    assert by[(2, "SRI-G", "shapestacks", "fid")] == PASS
    assert by[(2, "GENv2-G", "shapestacks", "fid")] == FAIL
    assert by[(4, "GENv2*", "shapestacks", "fid")] == PASS
    assert by[(3, "d", "blocks", "fid")] == NO_PAPER
    assert by[(2, "EMORL", "clevr6", "fid")] == MISSING
    assert exit_status(checks) == 1
    assert "FAIL" in render_checks(checks)
    tight = check_values(results, load_paper_results(), rel_tol=0.05)
    assert {(c.what, c.status) for c in tight if c.table == 4 and c.metric == "fid"
            and c.ours} == {("GENv2*", FAIL)}


def test_check_claims(tmp_path):
    good = _results(tmp_path / "good", {
        (3, "a", "shapestacks"): {"fid": [133.0]}, (3, "b", "shapestacks"): {"fid": [123.0]},
        (3, "c", "shapestacks"): {"fid": [106.0]}, (3, "d", "shapestacks"): {"fid": [75.0]},
    })
    paper = load_paper_results()
    claims = [c for c in CLAIMS if c.table == 3 and c.metric == "fid"]
    (chk,) = check_claims(good, paper, claims)
    assert chk.status == PASS and chk.paper == "75.0 | 106.3 | 123.2 | 132.9"
    assert exit_status(run_check(good)) == 0  # the values are in band too
    bad = _results(tmp_path / "bad", {
        (3, "a", "shapestacks"): {"fid": [133.0]}, (3, "b", "shapestacks"): {"fid": [100.0]},
        (3, "c", "shapestacks"): {"fid": [106.0]}, (3, "d", "shapestacks"): {"fid": [75.0]},
    })
    (chk,) = check_claims(bad, paper, claims)
    assert chk.status == FAIL
    partial = _results(tmp_path / "partial", {(3, "d", "shapestacks"): {"fid": [75.0]}})
    (chk,) = check_claims(partial, paper, claims)
    assert chk.status == MISSING
    # Claims hold for the paper's own numbers (a sanity check of the claim list).
    from sri.report.tables import Cell
    as_results = {k: Cell(*k, values=[v.mean]) for k, v in paper.items()}
    statuses = {c.what + c.dataset: c.status for c in check_claims(as_results, paper)}
    assert set(statuses.values()) <= {PASS, MISSING}
    assert sum(s == PASS for s in statuses.values()) >= 10


def test_claims_on_synthetic_only_when_asked(tmp_path):
    results = _results(tmp_path, {(2, "sri_g", "blocks"): {"fid": [50.0]},
                                  (2, "genv2_g", "blocks"): {"fid": [40.0]}})
    paper = load_paper_results()
    assert all(c.dataset != "blocks" for c in check_claims(results, paper))
    on_blocks = [c for c in check_claims(results, paper, all_datasets=True)
                 if c.dataset == "blocks" and c.what == "SRI-G's FID below GENv2-G's"]
    assert [c.status for c in on_blocks] == [FAIL]


def test_cli_exit_status(tmp_path, monkeypatch, capsys):
    from sri.report.__main__ import main

    _results(tmp_path / "runs", {(2, "genv2_g", "shapestacks"): {"fid": [300.0, 310.0]}})
    code = main(["check-paper", "--store", str(tmp_path / "runs"), "--out", str(tmp_path / "t"),
                 "--order", "off"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL" in out and (tmp_path / "t" / "check_paper.csv").is_file()
    assert main(["tables", "--store", str(tmp_path / "runs"), "--out", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "table2.md").is_file()
    ok_store = tmp_path / "ok"
    _results(ok_store, {(2, "genv2_g", "shapestacks"): {"fid": [115.0]}})
    assert main(["check-paper", "--store", str(ok_store), "--out", str(tmp_path / "t2")]) == 0
    assert main(["check-paper", "--store", str(ok_store), "--out", str(tmp_path / "t2"),
                 "--strict"]) == 1
    assert main(["tables", "--store", str(tmp_path / "absent")]) == 2


def test_csv_keeps_every_logged_metric(tmp_path):
    write_run(tmp_path / "runs", 1, table=2, row="sri_mog", dataset="clevr6", seed=0,
              metrics={"fid": 55.0, "nelbo_bpd": 0.9})
    write_run(tmp_path / "runs", 2, table=4, row="sri", dataset="blocks", seed=0,
              metrics={"fid": 12.0, "ari_fg": 0.5})
    build_tables(tmp_path / "runs", tmp_path / "t", order="off")
    t2 = list(csv.DictReader(open(tmp_path / "t" / "table2.csv")))
    assert [(l["metric"], l["mean"]) for l in t2 if l["row"] == "sri_mog" and l["dataset"] == "clevr6"
            and l["n"] == "1"] == [("fid", "55.0"), ("nelbo_bpd", "0.9")]
    assert "-ELBO" not in (tmp_path / "t" / "table2.md").read_text()  # not in the paper's layout
    t4 = list(csv.DictReader(open(tmp_path / "t" / "table4.csv")))
    assert {l["metric"] for l in t4 if l["dataset"] == "blocks"} == {"fid", "ari_fg"}
    md4 = (tmp_path / "t" / "table4.md").read_text()
    assert "Blocks (synthetic) FID" in md4 and "Blocks (synthetic) ARI" not in md4


def test_runs_with_non_finite_steps_are_flagged_in_the_tables(tmp_path):
    """Issue 27: a run with 50 of 60 non-finite steps showed as a plain '60 steps'."""
    from sri.report.tables import render_markdown

    write_run(tmp_path, 1, table=3, row="d", dataset="blocks", seed=0, metrics={"s_acc": 0.5},
              info={"nonfinite_steps": 7})
    write_run(tmp_path, 2, table=3, row="d", dataset="blocks", seed=1, metrics={"s_acc": 0.6})
    text = render_markdown(3, collect_results(load_runs(tmp_path), order="off"), {})
    assert "**7 non-finite steps**" in text and text.count("non-finite steps") == 1


def test_reports_read_final_values_only_and_get_the_same_tables(tmp_path):
    """Reports keep one point per metric (memory bounded by the number of runs), with equal results."""
    _fill(tmp_path / "runs")
    write_run(tmp_path / "runs", 200, table=3, row="c", dataset="blocks", seed=1,
              metrics={"fid": [(0, 50.0), (10, 40.0), (10, 41.0), (5, 99.0)], "loss": [(i, 1.0) for i in range(500)]})
    full = load_runs(tmp_path / "runs")
    final = load_runs(tmp_path / "runs", final_only=True)
    assert [r.id for r in full] == [r.id for r in final]
    for a, b in zip(full, final):
        assert a.final_metrics() == b.final_metrics()
        assert all(len(s) == 1 for s in b.metrics.values())
    (r200,) = [r for r in final if r.id == 200]
    assert r200.metrics["fid"] == [(10, 41.0)]  # largest step, last logged on ties
    import sri.tracking as tracking

    built = build_tables(tmp_path / "runs", tmp_path / "final", order="logged")
    orig = tracking.load_runs
    try:
        tracking.load_runs = lambda store, final_only=False: orig(store)  # every point, as before
        before = build_tables(tmp_path / "runs", tmp_path / "full", order="logged")
    finally:
        tracking.load_runs = orig
    for p_final, p_full in zip(built[1], before[1]):
        assert p_final.read_text() == p_full.read_text(), p_final.name


def test_tables_memory_benchmark_runs_end_to_end(tmp_path):
    import json

    from sri.bench.tables_memory import main as bench_main

    assert bench_main(["--runs", "8", "--metrics", "6", "--points", "20", "--compare-full-series",
                       "--out", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["final_only"]["peak_rss_mb"] > 10 and res["full_series"]["peak_rss_mb"] > 10
    assert res["runs"] == 8 and "commit" in res
