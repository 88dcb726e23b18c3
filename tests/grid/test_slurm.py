"""SLURM array scripts for the configured grid: one array task per unfinished cell, waves
chained with afterany, valid bash, and array indices that map back to the right cells."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from click.testing import CliRunner

from icb_kedro.grid.cells import build_grid
from icb_kedro.grid.cli import main as grid_cli
from icb_kedro.grid.config import load_settings
from icb_kedro.grid.layout import GridLayout
from icb_kedro.grid.manifest import cell_fingerprints, write_manifest
from icb_kedro.grid.slurm import write_slurm_scripts

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COHORTS = ["Melanoma_Nivolumab_Riaz2017", "Melanoma_PD1_Hugo2016"]


def _planned_grid(tmp_path: Path):
    settings = load_settings(
        PROJECT_ROOT, env="base", overrides={"cohorts": COHORTS, "trials": [0, 1], "n_bins": [4, 8]}
    )
    grid = build_grid(settings.grid, settings.cohorts, settings.trials)
    layout = GridLayout(
        root=str(tmp_path / "grid"),
        conf_source=str(PROJECT_ROOT / "conf"),
        env="base",
        environ={"ICB_DATA_DIR": str(settings.data_dir), "ICB_COHORTS": ",".join(COHORTS)},
        config_fingerprint="test",
    )
    fps = cell_fingerprints(grid, layout)
    write_manifest(grid, layout, fps)
    return settings, grid, layout, fps


def test_slurm_arrays_cover_every_unfinished_cell_wave_by_wave(tmp_path):
    settings, grid, layout, fps = _planned_grid(tmp_path)
    finished = f"ic2bert.finetune.{COHORTS[0]}.nb8.t1"
    layout.done_path(finished).parent.mkdir(parents=True)
    layout.done_path(finished).write_text(
        json.dumps({"cell_id": finished, "fingerprint": fps[finished]})
    )

    options = {
        **settings.grid["slurm"],
        "partition": "gpu",
        "setup": ["module load cuda/12.4"],
        "max_parallel": 5,
    }
    written = write_slurm_scripts(grid, layout, fps, PROJECT_ROOT, options, "base")
    out = Path(layout.root) / "slurm"

    waves = [(out / f"wave_{k}.cells").read_text().split() for k in range(4)]
    assert waves[0] == ["prepare"] and waves[1] == ["ic2bert.inputs"]
    assert sorted(waves[2]) == sorted(
        f"ic2bert.pretrain.{c}.nb{b}" for c in COHORTS for b in (4, 8)
    )
    assert (
        len(waves[3]) == 2 * 2 * 2 + 2 * 2 - 1 and finished not in waves[3]
    )  # finished cells are not resubmitted
    assert sorted(sum(waves, [])) == sorted(set(grid.ids) - {finished})

    last = (out / "wave_3.sbatch").read_text()
    assert f"#SBATCH --array=0-{len(waves[3]) - 1}%5" in last
    assert (
        "#SBATCH --gres=gpu:1" in last
        and "#SBATCH --partition=gpu" in last
        and "#SBATCH --time=04:00:00" in last
    )
    assert "module load cuda/12.4" in last and f"export ICB_DATA_DIR={settings.data_dir}" in last
    assert re.search(
        r"-m icb_kedro\.grid cell --root \S+ --cells \S+wave_3\.cells "
        r"--index \"\$\{SLURM_ARRAY_TASK_ID\}\"",
        last,
    )
    assert "--gres" not in (out / "wave_0.sbatch").read_text()  # the foundation needs no GPU

    submit = (out / "submit.sh").read_text()
    order = [submit.index(f"wave_{k}.sbatch") for k in range(4)] + [submit.index("merge.sbatch")]
    assert order == sorted(order) and submit.count("--dependency=afterany:") == 4
    assert "-m icb_kedro.grid merge --root" in (out / "merge.sbatch").read_text()
    for path in written.values():
        if path.suffix in (".sh", ".sbatch"):
            assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0, (
                path
            )


def test_an_array_index_runs_the_cell_on_that_line(tmp_path):
    settings, grid, layout, fps = _planned_grid(tmp_path)
    write_slurm_scripts(grid, layout, fps, PROJECT_ROOT, settings.grid["slurm"], "base")
    cells_file = Path(layout.root) / "slurm" / "wave_3.cells"
    lines = cells_file.read_text().split()
    runner = CliRunner()
    for index in (0, len(lines) - 1):
        result = runner.invoke(
            grid_cli,
            [
                "cell",
                "--root",
                layout.root,
                "--cells",
                str(cells_file),
                "--index",
                str(index),
                "--dry-run",
            ],
        )
        assert result.exit_code == 0, result.output
        assert result.output.strip() == lines[index]
    result = runner.invoke(
        grid_cli,
        [
            "cell",
            "--root",
            layout.root,
            "--cells",
            str(cells_file),
            "--index",
            str(len(lines)),
            "--dry-run",
        ],
    )
    assert result.exit_code != 0 and "outside" in result.output
