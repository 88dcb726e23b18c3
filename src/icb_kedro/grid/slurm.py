"""SLURM array scripts for the same grid: one array task per cell, one array per wave.

``python -m icb_kedro.grid slurm`` writes, under ``<grid root>/slurm/``:

- ``wave_<k>.cells``: the unfinished cells of dependency wave k, one id per line (wave 0 =
  prepare, 1 = pretraining per held-out cohort and bin count, 2 = fine-tuning per trial);
- ``wave_<k>.sbatch``: an array job, task i runs cell line i with
  ``python -m icb_kedro.grid cell --root <root> --cells wave_<k>.cells
  --index $SLURM_ARRAY_TASK_ID``;
- ``merge.sbatch``: merges results and logs them to MLflow (set ``MLFLOW_TRACKING_URI`` to a
  tracking server reachable from the nodes);
- ``submit.sh``: submits the waves chained with ``--dependency=afterany`` and then the merge.

``afterany`` (not ``afterok``): one failed pretraining must not cancel every other cohort's
fine-tuning; a cell whose dependency did not finish fails fast with a message naming it,
and the merge job reports it. Re-running ``slurm`` + ``submit.sh`` resubmits only
unfinished cells (finished ones carry a DONE.json with the same fingerprint).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from icb_kedro.grid.cells import PREPARE_ID, Grid
from icb_kedro.grid.layout import GridLayout
from icb_kedro.grid.manifest import is_done

SLURM_DIR = "slurm"


def _directives(
    job: str, options: Mapping[str, Any], log_dir: Path, *, array: str | None, gpus: int
) -> list[str]:
    lines = [f"#SBATCH --job-name={job}", f"#SBATCH --output={log_dir}/%x_%A_%a.out"]
    if array is not None:
        lines.append(f"#SBATCH --array={array}")
    for key, flag in (
        ("partition", "partition"),
        ("account", "account"),
        ("time", "time"),
        ("mem", "mem"),
    ):
        if options.get(key):
            lines.append(f"#SBATCH --{flag}={options[key]}")
    if options.get("cpus_per_task"):
        lines.append(f"#SBATCH --cpus-per-task={int(options['cpus_per_task'])}")
    if gpus:
        lines.append(f"#SBATCH --gres=gpu:{gpus}")
    lines += [f"#SBATCH {d}" for d in options.get("extra_directives") or []]
    return lines


def _preamble(
    project_root: Path, options: Mapping[str, Any], environ: Mapping[str, str]
) -> list[str]:
    lines = ["set -euo pipefail", f"cd {shlex.quote(str(project_root))}"]
    lines += [str(line) for line in options.get("setup") or []]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(environ.items())]
    return lines


def write_slurm_scripts(
    grid: Grid,
    layout: GridLayout,
    fingerprints: Mapping[str, str],
    project_root: Path,
    options: Mapping[str, Any],
    env: str,
) -> dict[str, Path]:
    """Write the wave arrays, merge job and submit script; return them by file name."""
    root = Path(layout.root)
    out = root / SLURM_DIR
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    python = str(options.get("python") or "python")
    max_parallel = int(options.get("max_parallel") or 0)
    preamble = _preamble(project_root, options, layout.environ)
    written: dict[str, Path] = {}
    wave_scripts: list[str] = []
    for k, wave in enumerate(grid.waves()):
        pending = [
            c.cell_id for c in wave if not is_done(layout, c.cell_id, fingerprints[c.cell_id])
        ]
        cells_file = out / f"wave_{k}.cells"
        cells_file.write_text("".join(f"{cid}\n" for cid in pending))
        written[cells_file.name] = cells_file
        if not pending:
            continue
        array = f"0-{len(pending) - 1}" + (f"%{max_parallel}" if max_parallel else "")
        gpus = 0 if all(cid == PREPARE_ID for cid in pending) else int(options.get("gpus") or 0)
        command = (
            f"{shlex.quote(python)} -m icb_kedro.grid cell --root {shlex.quote(str(root))} "
            f'--cells {shlex.quote(str(cells_file))} --index "${{SLURM_ARRAY_TASK_ID}}"'
        )
        script = "\n".join(
            [
                "#!/bin/bash",
                *_directives(f"icb-{grid.name}-w{k}", options, log_dir, array=array, gpus=gpus),
                "",
                *preamble,
                command,
                "",
            ]
        )
        path = out / f"wave_{k}.sbatch"
        path.write_text(script)
        written[path.name] = path
        wave_scripts.append(path.name)

    merge_command = (
        f"{shlex.quote(python)} -m icb_kedro.grid merge --root {shlex.quote(str(root))} "
        f"--env {shlex.quote(env)}"
    )
    merge = "\n".join(
        [
            "#!/bin/bash",
            *_directives(
                f"icb-{grid.name}-merge",
                {**options, "cpus_per_task": 1, "mem": "4G"},
                log_dir,
                array=None,
                gpus=0,
            ),
            "",
            *preamble,
            "# MLflow: export MLFLOW_TRACKING_URI=http://<tracking-server>:5000 in setup (see "
            "docs/configuration.md)",
            merge_command,
            "",
        ]
    )
    (out / "merge.sbatch").write_text(merge)
    written["merge.sbatch"] = out / "merge.sbatch"

    submit = [
        "#!/bin/bash",
        "# Submit the grid: waves in dependency order, then the merge.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'dep=""',
    ]
    for name in wave_scripts:
        var = name.removesuffix(".sbatch")
        # $dep unquoted on purpose: empty for the first wave, one --dependency flag after.
        submit += [
            f"{var}=$(sbatch --parsable $dep {name})",
            f'echo "{name}: job ${{{var}}}"',
            f"dep=--dependency=afterany:${{{var}}}",
        ]
    submit += [
        "merge=$(sbatch --parsable $dep merge.sbatch)",
        'echo "merge.sbatch: job ${merge}"',
        "",
    ]
    (out / "submit.sh").write_text("\n".join(submit))
    (out / "submit.sh").chmod(0o755)
    written["submit.sh"] = out / "submit.sh"
    return written
