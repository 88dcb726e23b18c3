"""Registered models get @champion (and the one replaced @challenger), with how they were chosen."""

from __future__ import annotations

from pathlib import Path

import yaml

from icb_kedro.hooks import promote_to_champion, registered_model_name

PROJECT = Path(__file__).resolve().parents[1]


def test_registered_model_names_match_the_catalog():
    ic2bert = yaml.safe_load((PROJECT / "conf/base/catalog_ic2bert.yml").read_text())[
        "{ns}.ic2bert_registered_model"
    ]
    amu = yaml.safe_load((PROJECT / "conf/base/catalog_amu.yml").read_text())[
        "amu_registered_model"
    ]
    assert ic2bert["save_args"]["registered_model_name"].format(
        ns="fold_X"
    ) == registered_model_name("fold_X.ic2bert_registered_model")
    assert amu["save_args"]["registered_model_name"] == registered_model_name(
        "amu_registered_model"
    )
    baseline = yaml.safe_load((PROJECT / "conf/base/catalog_baselines.yml").read_text())[
        "baseline_registered_model"
    ]
    assert baseline["save_args"]["registered_model_name"] == registered_model_name(
        "baseline_registered_model"
    )
    assert registered_model_name("predictions_ic2bert") is None
    from icb_kedro.paths import ic2bert_model_name

    assert ic2bert_model_name("Kidney_ICB_Miao2018") == registered_model_name(
        "fold_Kidney_ICB_Miao2018.ic2bert_registered_model"
    )


def test_newest_version_is_champion_and_the_previous_one_challenger(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("icb_toy")
    source = tmp_path / "model"
    source.mkdir()
    client.create_model_version("icb_toy", str(source))
    assert promote_to_champion(client, "icb_toy", {"held_out": "X", "trial": 3}) == "1"
    client.create_model_version("icb_toy", str(source))
    assert promote_to_champion(client, "icb_toy", {"held_out": "X", "trial": 1}) == "2"
    assert str(client.get_model_version_by_alias("icb_toy", "champion").version) == "2"
    assert str(client.get_model_version_by_alias("icb_toy", "challenger").version) == "1"
    assert client.get_model_version("icb_toy", "2").tags == {"held_out": "X", "trial": "1"}
    assert promote_to_champion(client, "icb_absent") is None


def test_champions_carry_the_measured_auroc_of_their_held_out_cohort(tmp_path):
    import mlflow
    import pandas as pd

    from icb_kedro.hooks import describe_champions, measured_auroc_tags, registration_description

    summary = pd.DataFrame(
        {
            "model": ["ic2bert", "ic2bert", "logreg"],
            "protocol": ["transfer", "loco", "transfer"],
            "cohort": ["X"] * 3,
            "n_repeats": [5, 1, 5],
            "n_patients": [40, 40, 40],
            "auroc_mean": [0.6512, 0.58, 0.9],
            "ci_low": [0.51, 0.41, 0.8],
            "ci_high": [0.77, 0.74, 0.99],
        }
    )
    tags = measured_auroc_tags(summary, "X")
    assert tags == {
        "auroc_transfer": "0.651 [0.51, 0.77] over 5 repeat(s), 40 patients",
        "auroc_zero_shot": "0.580 [0.41, 0.74] over 1 repeat(s), 40 patients",
    }
    assert measured_auroc_tags(summary, "Y") == {}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("icb_toy")
    (tmp_path / "model").mkdir()
    client.create_model_version("icb_toy", str(tmp_path / "model"))
    promote_to_champion(client, "icb_toy")
    metadata = {
        "held_out": "X",
        "pretrain_cohorts": "A, B",
        "n_finetune_rows": 32,
        "n_finetune_rows_held_out": 12,
        "protocol": "transfer",
        "n_genes": 937,
        "trial": 2,
        "selection": "readout_cv_auroc",
    }
    client.update_model_version(
        "icb_toy", "1", description=registration_description("icb_toy", metadata)
    )
    assert describe_champions(client, summary, {"X": "icb_toy", "Z": "icb_never_registered"}) == 1
    assert (
        describe_champions(client, summary, {"X": "icb_toy"}) == 1
    )  # again: replaces, never appends twice
    version = client.get_model_version("icb_toy", "1")
    assert version.tags["auroc_transfer"].startswith("0.651 [0.51, 0.77]")
    assert version.description.startswith(
        "IC2Bert for X: encoder pretrained (masked expression, no labels) on A, B;"
    )
    # The transfer model saw part of its own cohort: the description says how much.
    assert "on 32 labelled training patients, 12 of them from X itself" in version.description
    assert (
        version.description.count("Measured on X:") == 1
        and "transfer AUROC 0.651 [0.51, 0.77]" in version.description
    )
