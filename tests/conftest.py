"""Shared fixtures: the real shared data and an isolated copy of the Kedro project.

Integration tests run real pipelines in the ``light`` config environment (fewer trials and
epochs; same data, same assertions) inside a throw-away copy of the project (its own
``data/``, ``mlflow.db``), so a test run never touches a user's results.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def shared_data_path() -> Path:
    path = Path(os.environ.get("ICB_DATA_DIR") or PROJECT_ROOT / ".." / "shared" / "data").resolve()
    if not (path / "cohorts").is_dir():
        raise RuntimeError(f"the shared data directory {path} has no cohorts/ (set ICB_DATA_DIR)")
    return path


REAL_PROJECT_FIXTURES = {"light_project", "foundation_project"}
TESTS_ROOT = Path(__file__).resolve().parent


def _files_using(names: set[str]) -> frozenset[str]:
    """Test files (relative to the rootdir, as in node ids) that mention any fixture of
    ``names``."""
    return frozenset(
        str(path.relative_to(PROJECT_ROOT))
        for path in TESTS_ROOT.rglob("test_*.py")
        if any(name in path.read_text() for name in names)
    )


# Work units for pytest-xdist. Every test file that uses the shared real-data project runs in
# one worker, in file order, so the project is built and run once (session and module
# fixtures), and the Dask grid tests share one LocalCluster (2 processes on a 2-core machine).
# A scheduler of our own, not `xdist_group` marks: pytest 9.2 keeps node ids in `Node._id`,
# so xdist 3.8's `--dist loadgroup` renaming of `item._nodeid` no longer takes effect and the
# marked tests were spread over both workers (each building the whole project: found when
# module fixtures showed up twice in `--durations`).
GROUPS = {
    "real_data_project": _files_using(REAL_PROJECT_FIXTURES),
    "grid_dask": _files_using({"dask_client"}),
}


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: its group's name, or the test itself."""
    path = nodeid.split("::", 1)[0]
    for group, files in GROUPS.items():
        if path in files:
            return group
    return nodeid


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return GroupScheduling(config, log)


ENVS = ("base", "light", "paper")  # the configuration environments every typed block must parse


@pytest.fixture(autouse=True)
def _reset_mlflow_globals() -> Iterator[None]:
    """MLflow keeps the tracking/registry URI and the active experiment in module globals
    and kedro-mlflow exports ``MLFLOW_EXPERIMENT_ID``: a test that points them at its own
    temporary store must not redirect the next test."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        os.environ.pop(key)
    os.environ.update(saved)
    import sys

    if "mlflow" not in sys.modules:
        return
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    while mlflow.active_run() is not None:
        mlflow.end_run()
    tracking_utils._tracking_uri = None
    registry_utils._registry_uri = None
    fluent._active_experiment_id = None


@pytest.fixture(scope="session")
def parameters_by_env() -> dict[str, dict]:
    """The parameters of base, light and paper as a run loads them (the project's config
    loader: soft merge over conf/base), without a Kedro session: a session would start
    kedro-mlflow, which exports ``MLFLOW_EXPERIMENT_ID`` into every later test."""
    from icb_kedro.grid.config import config_loader

    root = Path(__file__).resolve().parents[1]
    return {env: config_loader(root / "conf", env)["parameters"] for env in ENVS}


@pytest.fixture
def registered_pipeline():
    """The registered pipeline by name (with the upstream chain the registry adds); a
    namespace interrupted by the registry's sums raises instead of warning."""
    import warnings

    from kedro.framework.startup import bootstrap_project

    bootstrap_project(Path(__file__).resolve().parents[1])
    from icb_kedro.pipeline_registry import register_pipelines

    def get(name: str):
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "error", message="Namespace .* is interrupted", category=UserWarning
            )
            return register_pipelines()[name]

    return get


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    return shared_data_path()


def make_project_copy(target: Path) -> Path:
    """A minimal Kedro project at ``target`` using this checkout's conf/ (package installed)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", target / "pyproject.toml")
    shutil.copytree(
        PROJECT_ROOT / "conf",
        target / "conf",
        ignore=shutil.ignore_patterns("local"),
        dirs_exist_ok=True,
    )
    (target / "conf" / "local").mkdir(exist_ok=True)
    (target / "src").mkdir(exist_ok=True)  # bootstrap_project wants source_dir to exist
    for layer in (
        "01_raw",
        "02_intermediate",
        "03_primary",
        "04_feature",
        "05_model_input",
        "06_models",
        "07_model_output",
        "08_reporting",
    ):
        (target / "data" / layer).mkdir(parents=True, exist_ok=True)
    return target


class KedroProject:
    """Run pipelines of an isolated project copy and read its outputs."""

    def __init__(self, path: Path, env: str = "light") -> None:
        self.path = path
        self.env = env

    def run(self, pipelines: list[str] | None = None, **run_kwargs) -> dict:
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        old_cwd = Path.cwd()
        old_env = dict(os.environ)  # kedro-mlflow exports MLFLOW_EXPERIMENT_ID, Kedro PYTHONPATH
        os.chdir(self.path)  # mlflow's default artifact root (./mlruns) is cwd-relative
        os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        try:
            bootstrap_project(self.path)
            with KedroSession.create(project_path=self.path, env=self.env) as session:
                return session.run(pipeline_names=pipelines, **run_kwargs)
        finally:
            import mlflow

            while (
                mlflow.active_run() is not None
            ):  # kedro-mlflow leaves its finished run on the stack
                mlflow.end_run()
            from mlflow.tracking import fluent

            fluent._active_experiment_id = None
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)
            os.chdir(old_cwd)
            os.environ.clear()
            os.environ.update(old_env)

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.path / 'mlflow.db'}"

    def read(self, relative: str):
        import pandas as pd

        return pd.read_parquet(self.path / relative)


@pytest.fixture(scope="session")
def light_project(tmp_path_factory, shared_data_dir) -> Iterator[KedroProject]:
    """An isolated project copy (light env) with ICB_DATA_DIR pointing at the shared data."""
    old = os.environ.get("ICB_DATA_DIR")
    os.environ["ICB_DATA_DIR"] = str(shared_data_dir)
    try:
        yield KedroProject(make_project_copy(tmp_path_factory.mktemp("icb_project")))
    finally:
        if old is None:
            os.environ.pop("ICB_DATA_DIR", None)
        else:
            os.environ["ICB_DATA_DIR"] = old


@pytest.fixture(scope="session")
def foundation_project(light_project: KedroProject) -> KedroProject:
    """The light project after ingestion + harmonization + folds ran on the real data."""
    light_project.run(["ingestion", "harmonization", "folds"])
    return light_project


class ModelFreeEnv:
    """A fresh virtual environment with this project's third-party libraries (the pinned
    versions a registered model lists in its requirements) but neither icb_kedro nor Kedro:
    where a colleague loads or serves a registered model. Built without the network: the
    libraries are linked from ``.venv`` rather than downloaded again."""

    #: site-packages entries left out: the project itself, Kedro and its plug-ins, .pth files.
    HIDDEN = ("icb_kedro", "__editable__", "kedro", "_virtualenv")

    def __init__(self, root: Path) -> None:
        import stat
        import subprocess
        import sys
        import sysconfig

        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True
        )
        libraries = root / "libraries"
        libraries.mkdir()
        for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
            if entry.name.lower().startswith(self.HIDDEN) or entry.suffix == ".pth":
                continue
            (libraries / entry.name).symlink_to(entry)
        (site,) = (root / "venv" / "lib").glob("python3*/site-packages")
        (site / "libraries.pth").write_text(f"{libraries}\n")
        self.bin = root / "venv" / "bin"
        self.python = self.bin / "python"
        # The console script `mlflow models serve` starts (pip would have written it).
        launcher = self.bin / "uvicorn"
        launcher.write_text(
            f"#!{self.python}\nimport sys\nfrom uvicorn.main import main\nsys.exit(main())\n"
        )
        launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)

    def environ(self, tracking_uri: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("MLFLOW_")
        }
        env.update(
            PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
            MLFLOW_TRACKING_URI=tracking_uri,
            MLFLOW_REGISTRY_URI=tracking_uri,
        )
        return env

    def run(self, script: str, *args: str, tracking_uri: str, cwd: Path):
        """Run ``script`` (Python source) there; returns the completed process (checked)."""
        import subprocess

        done = subprocess.run(
            [str(self.python), "-c", script, *args],
            cwd=cwd,
            env=self.environ(tracking_uri),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        return done


@pytest.fixture(scope="session")
def model_free_env(tmp_path_factory) -> ModelFreeEnv:
    env = ModelFreeEnv(tmp_path_factory.mktemp("model_free_env"))
    probe = (
        "import importlib.util as u; print(u.find_spec('icb_kedro'), u.find_spec('kedro'), "
        "u.find_spec('mlflow') is not None)"
    )
    done = env.run(
        probe, tracking_uri="sqlite:///unused.db", cwd=Path(tmp_path_factory.getbasetemp())
    )
    assert done.stdout.split() == ["None", "None", "True"], (
        done.stdout
    )  # no project, no Kedro; MLflow there
    return env
