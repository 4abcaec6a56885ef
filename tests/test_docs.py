"""The docs match the code (issue 26): make targets, commands that parse, paths that exist, and no
reference that leaves the repository."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "docs").glob("*/README.md"))]
SOURCES = sorted(p for d in ("sri", "experiments", "scripts", "tests") for p in (REPO / d).rglob("*.py"))
TOP = ("sri/", "docs/", "tests/", "experiments/", "scripts/", "demo_checkpoints/", "tables/", "docker/",
       "checkpoints/", ".ci/")
# folders that commands create (gitignored), not files of the repository
GENERATED = ("tables/demo/", "tables/smoke/", "checkpoints/", "runs/", "figures/")


def _text(p: Path) -> str:
    return p.read_text(encoding="utf-8")


def make_targets() -> dict[str, bool]:
    """Makefile targets -> whether `make help` lists them (a `## ` comment)."""
    out = {}
    for line in _text(REPO / "Makefile").splitlines():
        m = re.match(r"^([a-zA-Z_-]+):(?!=)", line)
        if m:
            out[m.group(1)] = "## " in line
    return out


def test_every_make_target_is_listed_by_help_and_the_readme():
    targets = make_targets()
    assert [t for t, listed in targets.items() if not listed] == []
    readme = _text(REPO / "README.md")
    listed = re.search(r"`make help` lists every target: (.*?)\(", readme, re.S).group(1)
    named = set(re.findall(r"`([a-z-]+)`", listed))
    assert named == set(targets) - {"help"}


def test_every_make_command_in_the_docs_exists():
    targets = make_targets()
    for doc in DOCS:
        text = _text(doc)  # `make X` in backticks, or a `make X` line of a code block
        for t in re.findall(r"`make ([a-z][a-z-]+)", text) + re.findall(r"^\s+make ([a-z][a-z-]+)", text, re.M):
            assert t in targets, f"{doc.name} names `make {t}`, which the Makefile does not have"


def _commands() -> set[tuple[str, ...]]:
    """(module, subcommand...) of every `python -m sri...` and `sri ...` command in the docs."""
    found: set[tuple[str, ...]] = set()
    for doc in DOCS:
        for mod, sub in re.findall(r"python -m (sri[a-z_.]*)((?: [a-z][a-z_-]+)?)", _text(doc)):
            found.add((mod, *sub.split()))
        for sub in re.findall(r"^\s*(?:\$ )?sri ((?:[a-z][a-z_-]+)(?: [a-z][a-z_-]+)?)", _text(doc), re.M):
            found.add(("sri.cli", *sub.split()))
    return found


@pytest.mark.parametrize("cmd", sorted(_commands()), ids=lambda c: " ".join(c))
def test_every_documented_command_parses(cmd):
    mod, *sub = cmd
    r = subprocess.run([sys.executable, "-m", mod, *sub, "--help"], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0 and sub:  # the word after the module may be an argument, not a subcommand
        r = subprocess.run([sys.executable, "-m", mod, *sub[:-1], "--help"], cwd=REPO, capture_output=True,
                           text=True, timeout=300)
    assert r.returncode == 0, f"python -m {' '.join(cmd)} --help: {r.stderr[-800:]}"


def _paths(text: str) -> set[str]:
    cands = set(re.findall(r"`([A-Za-z0-9_./-]+)`", text)) | set(re.findall(r"\]\(([^)#\s]+)", text))
    return {c for c in cands if c.startswith(TOP) and not c.startswith("http")}


def test_every_repository_path_named_in_the_docs_exists():
    missing = []
    for doc in DOCS:
        for p in _paths(_text(doc)):
            base = doc.parent if not p.startswith(TOP) else REPO
            for cand in (REPO / p, doc.parent / p, base / p):
                if cand.exists():
                    break
            else:
                # a folder a command creates (runs/, figures/) or a pattern is not a path of the repo
                if not re.search(r"[<>{}*]|\.\.\.", p) and not p.startswith(GENERATED):
                    missing.append(f"{doc.relative_to(REPO)}: {p}")
    assert missing == []


def test_no_reference_leaves_the_repository():
    bad = []
    for f in [*DOCS, *SOURCES, REPO / "Makefile"]:
        if f.name == "test_docs.py":
            continue
        for i, line in enumerate(_text(f).splitlines(), 1):
            if "DESIGN.md" in line or "../shared" in line or "shared/paper" in line:
                bad.append(f"{f.relative_to(REPO)}:{i}")
    assert bad == []


def test_every_committed_result_json_says_where_it_came_from():
    """Issue 26: date, commit (and whether the tree was dirty where known), command, machine, torch."""
    import json

    files = [*REPO.glob("docs/**/*.json"), *REPO.glob("demo_checkpoints/*.json")]
    assert len(files) > 20
    missing = {}
    for f in files:
        d = json.loads(f.read_text())
        lacks = sorted({"date", "commit", "command", "machine", "torch"} - set(d))
        if lacks:
            missing[str(f.relative_to(REPO))] = lacks
    assert missing == {}
