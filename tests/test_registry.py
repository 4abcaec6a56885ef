"""The model registry is the one source of model facts; nothing outside sri/models compares names."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from sri.models import IMPLEMENTED, LOSS_GROUPS, MODEL_NAMES, REGISTRY, build_model, model_spec
from sri.train.step import make_gecos

ROOT = Path(__file__).resolve().parents[1]


def _name_literals(node: ast.AST) -> list[str]:
    """Model names written as string literals in a comparison operand (also inside tuples/sets)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if node.value in MODEL_NAMES else []
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [n for e in node.elts for n in _name_literals(e)]
    return []


def _model_name_comparisons(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Compare):
            names = [n for op in [node.left, *node.comparators] for n in _name_literals(op)]
            text = ast.unparse(node)
            # row names of the paper's tables share some spellings ("sri", "gen"); a comparison
            # that involves a model (not a row) is what is forbidden
            if names and "model" in text.lower() and "loss_groups" not in text:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    return found


def test_no_module_outside_sri_models_compares_model_names():
    files = [p for p in (ROOT / "sri").rglob("*.py") if "models" not in p.relative_to(ROOT / "sri").parts]
    files += list((ROOT / "experiments").glob("*.py"))
    hits = [h for p in files for h in _model_name_comparisons(p)]
    assert not hits, "compare registry facts (sri.models.model_spec) instead:\n" + "\n".join(hits)


def test_the_check_finds_a_comparison(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('def f(model):\n    return getattr(model, "name", None) == "sri"\n'
                   'def g(cfg):\n    return cfg["model"] in ("sri", "sri_sa")\n')
    bad = bad.rename(ROOT / "tests" / "_tmp_bad_registry_check.py")
    try:
        assert len(_model_name_comparisons(bad)) == 2
    finally:
        bad.unlink()


def test_registry_facts():
    assert MODEL_NAMES == tuple(REGISTRY) and set(IMPLEMENTED) <= set(MODEL_NAMES)
    assert {"sri", "genv2", "gen"} <= set(IMPLEMENTED)
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.label
        assert spec.loss_groups[0] == "seg" and set(spec.loss_groups) <= set(LOSS_GROUPS)
    assert model_spec("sri").loss_groups == ("seg", "sri")
    assert model_spec("genv2").loss_groups == ("seg",) and model_spec("gen").loss_groups == ("seg",)
    assert not model_spec("emorl").autoregressive and model_spec("sri").ordered_posterior
    with pytest.raises(ValueError, match="valid names"):
        model_spec("monet")


@pytest.mark.parametrize("name", ["sri", "genv2", "gen"])
def test_one_geco_per_loss_group_and_the_terms_exist(name):
    torch.manual_seed(0)
    m = build_model(name, image_size=16, num_slots=3, slot_dim=8)
    assert model_spec(m).name == name
    gecos = make_gecos(m, goal_per_element=0.5)
    assert tuple(gecos) == model_spec(name).loss_groups
    terms = m(torch.rand(2, 3, 16, 16)).terms
    for g in gecos:
        assert {LOSS_GROUPS[g].nll, *LOSS_GROUPS[g].kl} <= set(terms)


def test_every_named_geco_form_and_optimisation_base_exists():
    from sri.configs import OPTIM_BASES, TABLES, ConfigError, _optim
    from sri.objectives import GECO_FORMS

    assert all(spec.geco in GECO_FORMS for spec in REGISTRY.values())
    assert {r["base"] for t in TABLES.values() for r in t["rows"].values()} <= set(OPTIM_BASES)
    assert _optim("genv2", "clevr6")["steps"] == 425_000 and _optim("genv2", "shapestacks")["steps"] == 500_000
    assert _optim("emorl", "clevr6")["lr_warmup_steps"] == 10_000
    with pytest.raises(ConfigError, match="optimisation base"):
        _optim("monet", "clevr6")
