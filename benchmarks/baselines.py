"""Wall time and peak memory of the full baselines pipeline, then its mean AUROC table.

    python benchmarks/baselines.py [--env base] [--foundation-from .] [--workdir DIR] [--keep]

Runs in a throw-away copy of the project (its own data/ and SQLite MLflow store), so a
benchmark never touches a user's results. The foundation (ingestion -> harmonization ->
folds) runs first, untimed, unless ``--foundation-from`` names a project whose
``data/02_intermediate``, ``03_primary`` and ``05_model_input`` are copied instead. Then
``kedro run --pipelines baselines`` is timed: wall clock, CPU time of the process and its
worker processes (a shared machine steals cycles: CPU time is the steadier figure), peak
resident memory of the process tree, and the load average before and after. It closes
with the mean AUROC (unweighted over cohorts) of every baseline x protocol the run produced.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FOUNDATION_LAYERS = ("02_intermediate", "03_primary", "05_model_input")
DATA_LAYERS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
)


def project_copy(target: Path) -> Path:
    """pyproject.toml + conf/ (without local/) + empty data layers: enough for a KedroSession."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", target / "pyproject.toml")
    shutil.copytree(
        PROJECT_ROOT / "conf",
        target / "conf",
        ignore=shutil.ignore_patterns("local"),
        dirs_exist_ok=True,
    )
    (target / "conf" / "local").mkdir(exist_ok=True)
    (target / "src").mkdir(exist_ok=True)
    for layer in DATA_LAYERS:
        (target / "data" / layer).mkdir(parents=True, exist_ok=True)
    return target


class PeakMemory:
    """Samples the resident memory of this process and all its children every 0.2 s."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        import psutil

        total = 0
        for proc in [self._process, *self._process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:  # a worker ended between listing and reading
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._rss())
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished (waited-for) children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_pipelines(
    project: Path, env: str, pipelines: list[str], runtime_params: dict | None = None
) -> None:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(
        project_path=project, env=env, runtime_params=runtime_params
    ) as session:
        session.run(pipeline_names=pipelines)
    import mlflow

    while mlflow.active_run() is not None:  # kedro-mlflow leaves its finished run on the stack
        mlflow.end_run()


def auroc_table(project: Path) -> str:
    import pandas as pd

    overall = pd.read_csv(project / "data" / "08_reporting" / "baselines" / "overall_summary.csv")
    table = overall.pivot(index="model", columns="protocol", values="auroc_mean")
    order = [p for p in ("transfer", "loco", "within", "amu_holdout") if p in table.columns]
    table = table[order].sort_values(order[0], ascending=False)
    return table.round(3).to_string(na_rep="-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env", default="base", help="Kedro config environment (base = the full protocol)"
    )
    parser.add_argument(
        "--foundation-from",
        type=Path,
        default=None,
        help="copy the foundation layers from this project",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the project copy goes (default: a temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the project copy")
    parser.add_argument(
        "--repeats",
        default="all",
        help="K-fold repeats per held-out cohort (baselines.n_repeats): all (10) or a number",
    )
    args = parser.parse_args()

    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MPLBACKEND", "Agg")
    from icb_kedro.paths import data_dir

    os.environ.setdefault("ICB_DATA_DIR", data_dir())  # resolved from this checkout, not the copy
    foundation = (
        args.foundation_from.resolve() if args.foundation_from else None
    )  # before the chdir below
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="icb_baselines_bench_"))
    project = project_copy(workdir)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    old_cwd = Path.cwd()
    os.chdir(project)  # mlflow's artifact root (./mlruns) is cwd-relative
    try:
        if foundation:
            for layer in FOUNDATION_LAYERS:
                shutil.copytree(
                    foundation / "data" / layer, project / "data" / layer, dirs_exist_ok=True
                )
        else:
            started = time.perf_counter()
            run_pipelines(project, args.env, ["ingestion", "harmonization", "folds"])
            print(f"foundation (untimed below): {time.perf_counter() - started:.0f} s")

        load_before = os.getloadavg()[0]
        cpu_before = cpu_seconds()
        with PeakMemory() as memory:
            started = time.perf_counter()
            # The benchmark: every protocol on all 10 repeats (conf/base runs the first,
            # as IC2Bert does); --repeats 1 times what `make run` does. (This once passed
            # n_trials, a key renamed n_repeats: it did nothing; the typed block refuses it now.)
            repeats = None if args.repeats == "all" else int(args.repeats)
            run_pipelines(project, args.env, ["baselines"], {"baselines": {"n_repeats": repeats}})
            wall = time.perf_counter() - started
            from joblib.externals.loky import get_reusable_executor

            get_reusable_executor().shutdown(
                wait=True
            )  # reap the fold workers: their CPU counts below
        cpu = cpu_seconds() - cpu_before
        load_after = os.getloadavg()[0]

        import pandas as pd

        log = pd.read_csv(project / "data" / "08_reporting" / "baselines" / "search_log.csv")
        metrics = pd.read_parquet(
            project / "data" / "07_model_output" / "fold_metrics_baselines.parquet"
        )
        print(
            f"\nbaselines pipeline, env '{args.env}', {os.cpu_count()} CPUs, load average "
            f"{load_before:.1f} -> {load_after:.1f}"
        )
        print(f"  wall time      : {wall:8.1f} s  ({wall / 60:.1f} min)")
        print(f"  CPU time       : {cpu:8.1f} s  (process + fold workers)")
        print(f"  peak memory    : {memory.peak_bytes / 2**20:8.0f} MiB  (resident, process tree)")
        print(
            f"  scored folds   : {len(metrics)} rows in fold_metrics_baselines "
            f"({metrics['model'].nunique()} models)"
        )
        per_model = (
            log.groupby("model")["seconds"]
            .agg(["sum", "count"])
            .sort_values("sum", ascending=False)
        )
        print("  fit time per model (s, summed over folds; folds run in parallel):")
        for model, row in per_model.iterrows():
            print(f"    {model:<10} {row['sum']:8.1f} s over {int(row['count'])} folds")
        print("\nMean AUROC (unweighted over cohorts) per baseline x protocol:")
        print(auroc_table(project))
    finally:
        os.chdir(old_cwd)
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep:
            print(f"\nproject copy kept at {workdir}")


if __name__ == "__main__":
    main()
