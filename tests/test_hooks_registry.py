"""Registered models get @champion (and the one replaced @challenger), with how they were chosen."""

from __future__ import annotations

from pathlib import Path

import yaml

from icb_kedro.hooks import promote_to_champion, registered_model_name

PROJECT = Path(__file__).resolve().parents[1]


def test_registered_model_names_match_the_catalog():
    ic2bert = yaml.safe_load((PROJECT / "conf/base/catalog_ic2bert.yml").read_text())["{ns}.ic2bert_registered_model"]
    amu = yaml.safe_load((PROJECT / "conf/base/catalog_amu.yml").read_text())["amu_registered_model"]
    assert ic2bert["save_args"]["registered_model_name"].format(ns="fold_X") == registered_model_name("fold_X.ic2bert_registered_model")
    assert amu["save_args"]["registered_model_name"] == registered_model_name("amu_registered_model")
    assert registered_model_name("predictions_ic2bert") is None


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
