"""A corpus of bad or odd expression files, each fed to BOTH entry points: ingestion (the
catalog's raw reader + ``parse_expression``) and ``predict`` (``read_expression_file``).

Each case asserts the outcome and the key words of the message (file, column / row /
sample / gene), and that the two entry points say the same thing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from icb_kedro.io.readers import parse_expression
from icb_kedro.io.validation import InputDataError
from icb_kedro.pipelines.predict.nodes import read_expression_file

PROJECT = Path(__file__).resolve().parents[2]
FLOOR = math.log2(0.001)
GENES = ["CD8A", "GZMA", "PRF1", "CXCL9"]
SAMPLES = ["S1", "S2", "S3"]


def good_values() -> np.ndarray:
    """[genes, samples] log2(TPM+0.001) with a zero TPM in every sample."""
    tpm = np.array([[10.0, 0.0, 3.0], [0.0, 25.0, 0.0], [5.0, 1.0, 0.0], [120.0, 40.0, 7.0]])
    return np.log2(tpm + 0.001)


def write(
    path: Path, genes=GENES, samples=SAMPLES, values=None, cells: dict | None = None, header=None
) -> Path:
    """A gene-major TSV; ``cells`` overrides single cells {(gene row, sample col): text}."""
    values = good_values() if values is None else values
    text = [[repr(float(v)) for v in row] for row in values]
    for (r, c), cell in (cells or {}).items():
        text[r][c] = cell
    lines = ["\t".join(header or ["gene", *samples])]
    lines += ["\t".join([g, *row]) for g, row in zip(genes, text, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def ingest(path: Path, policy: str = "error"):
    """What ingestion does with one cohort file: the catalog's reader, then the shared parser."""
    catalog = yaml.safe_load((PROJECT / "conf/base/catalog.yml").read_text())
    load_args = catalog["raw_cohort_expression"]["dataset"]["load_args"]
    raw = pd.read_csv(path, **load_args)
    return parse_expression(raw, str(path), policy)


def predict(path: Path, **params):
    return read_expression_file({"input_path": str(path), **params})


# name -> (file builder kwargs, words every message must hold)
REFUSED = {
    "duplicate sample column": (
        {"header": ["gene", "S1", "S1", "S3"]},
        ["duplicate sample id", "'S1'"],
    ),
    "duplicate gene row": (
        {"genes": ["CD8A", "GZMA", "CD8A", "CXCL9"]},
        ["duplicate gene id", "'CD8A'", "[2, 4]"],
    ),
    "non-numeric cell": ({"cells": {(0, 1): "high"}}, ["non-numeric", "'S2'", "'CD8A'", "'high'"]),
    "impossible value 55": ({"cells": {(1, 1): "55"}}, ["invalid value", "'GZMA'", "'S2'", "55.0"]),
    "below the floor": ({"cells": {(2, 0): "-12"}}, ["invalid value", "'PRF1'", "'S1'", "-12.0"]),
    "infinite value": ({"cells": {(3, 2): "inf"}}, ["invalid value", "'CXCL9'", "'S3'", "inf"]),
    "raw TPM given as log2": (
        {
            "values": np.array(
                [[10.0, 0.0, 3.0], [0.0, 25.0, 0.0], [5.0, 1.0, 0.0], [1200.0, 40.0, 7.0]]
            )
        },
        ["invalid value", "'CXCL9'", "1200.0", "raw TPM or counts"],
    ),
    "log2(TPM+1) given as log2(TPM+0.001)": (
        {"values": np.log2(np.exp2(good_values()) - 0.001 + 1.0)},
        ["do not look like log2(TPM+0.001)", "floor", "scale_check", "looks like log2(TPM+1)"],
    ),
    "ln(TPM+0.001)": (
        {"values": np.log(np.exp2(good_values()))},
        ["do not look like log2(TPM+0.001)", "-6.908", "looks like ln(TPM+0.001)"],
    ),
    "TPM sums above 1e6": (
        {
            "values": np.log2(
                np.array([[6e5, 0.0, 3.0], [6e5, 25.0, 0.0], [0.0, 1.0, 0.0], [1.0, 40.0, 7.0]])
                + 0.001
            )
        },
        ["sum above", "1e6", "'S1'"],
    ),
    "a sample with no value": (
        {"cells": {(r, 1): "" for r in range(4)}},
        ["no value for any gene", "'S2'"],
    ),
    "empty sample id": ({"header": ["gene", "S1", "", "S3"]}, ["empty sample id", "column(s) [3]"]),
    "sample id NA": ({"header": ["gene", "S1", "NA", "S3"]}, ["empty sample id", "NA/NULL", "[3]"]),
    "sample id NULL": ({"header": ["gene", "S1", "NULL", "S3"]}, ["empty sample id", "NA/NULL"]),
    "empty gene id": ({"genes": ["CD8A", "", "PRF1", "CXCL9"]}, ["column 'gene' is empty", "[3]"]),
    "gene id NA": (
        {"genes": ["CD8A", "GZMA", "NA", "CXCL9"]},
        ["column 'gene' is empty", "NA/NULL", "[4]"],
    ),
    "first column not gene": (
        {"header": ["symbol", *SAMPLES]},
        ["first column must be 'gene'", "symbol"],
    ),
}


def _expect(err: pytest.ExceptionInfo, path: Path, words: list[str]) -> str:
    message = str(err.value)
    assert str(path) in message, message  # the file
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    return message


@pytest.mark.parametrize("entry", ["ingestion", "predict"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_file_is_refused_naming_where(tmp_path, case, entry):
    kwargs, words = REFUSED[case]
    path = write(tmp_path / "cohort.expression.tsv", **kwargs)
    with pytest.raises(InputDataError) as err:
        ingest(path) if entry == "ingestion" else predict(path)
    _expect(err, path, words)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_both_entry_points_say_the_same(tmp_path, case):
    kwargs, _ = REFUSED[case]
    path = write(tmp_path / "cohort.expression.tsv", **kwargs)
    messages = []
    for entry in (ingest, predict):
        with pytest.raises(InputDataError) as err:
            entry(path)
        messages.append(str(err.value))
    # Identical, but for the config section a user would change (ingestion.* / predict.*) and
    # predict's own setting for a file on another scale.
    predict_only = " (or state its scale, predict.input_scale)"
    assert messages[0] == messages[1].replace(predict_only, "").replace(
        "set predict.", "set ingestion."
    )


def test_header_only_file(tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_text("gene\tS1\tS2\n")
    for entry in (ingest, predict):
        with pytest.raises(InputDataError, match="header but no data rows"):
            entry(path)


def test_missing_values_by_entry_point(tmp_path):
    """A value missing in one sample: ingestion's policy decides (error / imputed and
    counted); predict refuses it, naming (sample, gene) - it never imputes a new cohort."""
    path = write(tmp_path / "cohort.tsv", cells={(0, 1): ""})
    with pytest.raises(InputDataError, match=r"1 missing value.*\('S2', 'CD8A'\)"):
        ingest(path, "error")
    table, report = ingest(path, "impute_gene_median")
    assert report["n_missing_values"] == 1 and table.shape == (3, 4)
    with pytest.raises(InputDataError, match=r"genes other samples measure.*\('S2', 'CD8A'\)"):
        predict(path)


def test_a_gene_absent_from_every_sample_is_absent_in_predict(tmp_path):
    path = write(tmp_path / "cohort.tsv", cells={(2, c): "" for c in range(3)})
    table = predict(path)
    assert table["PRF1"].isna().all() and table.drop(columns="PRF1").notna().all().all()
    with pytest.raises(InputDataError, match="missing in every sample, cannot impute.*PRF1"):
        ingest(path, "impute_gene_median")


# Harmless variations: accepted with the same numbers as the clean file.
ACCEPTED = {
    "spaces around ids": {
        "header": ["gene", " S1", "S2 ", "S3"],
        "genes": [" CD8A", "GZMA ", "PRF1", "CXCL9"],
    },
    "scientific notation": {"cells": {(0, 0): "3.32195e+00"}},
    "plus sign and trailing zeros": {"cells": {(0, 0): "+3.3219000"}},
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_harmless_variations_are_accepted(tmp_path, case):
    kwargs = ACCEPTED[case]
    path = write(tmp_path / "cohort.tsv", **kwargs)
    table, _ = ingest(path)
    assert list(table.index) == SAMPLES and list(table.columns) == GENES
    assert predict(path).shape == (3, 4)


def test_sample_major_duplicate_row_and_log2_tpm1_scale(tmp_path):
    path = tmp_path / "new.csv"
    frame = pd.DataFrame(np.log2(np.exp2(good_values().T) - 0.001 + 1.0), columns=GENES)
    frame.insert(0, "id", SAMPLES)
    frame.to_csv(path, index=False)
    table = predict(path, input_layout="sample_major", input_scale="log2_tpm1")
    np.testing.assert_allclose(table.to_numpy(), frame[GENES].to_numpy())
    pd.concat([frame, frame.iloc[[1]]]).to_csv(path, index=False)  # sample S2 twice
    with pytest.raises(InputDataError, match=r"duplicate sample id.*'S2'"):
        predict(path, input_layout="sample_major", input_scale="log2_tpm1")


def test_scale_check_can_be_turned_off_for_a_file_without_zero_tpm(tmp_path):
    path = write(tmp_path / "cohort.tsv", values=np.log2(np.full((4, 3), 5.0) + 0.001))
    with pytest.raises(InputDataError, match="floor"):
        predict(path)
    assert predict(path, scale_check=False).shape == (3, 4)


def test_every_shared_cohort_passes_the_scale_check(shared_data_dir):
    """The check is right on the real data: all 13 shared cohort files pass."""
    files = sorted((shared_data_dir / "cohorts").glob("*.expression.tsv.gz"))
    assert len(files) >= 13
    for path in files:
        table, _ = ingest(path, "impute_gene_median")
        assert len(table) > 0


# --------------------------------------------------------------------------- gene ids, panels
def test_gene_ids_that_do_not_match_stop_ingestion_with_the_likely_cause():
    from icb_kedro.io.validation import check_gene_overlap

    reference = {f"GENE{i}" for i in range(100)} | {"MARCHF1", "SEPTIN2"}
    sources = {"Mine": "cohorts/Mine.expression.tsv.gz"}
    cases = {
        "lower case": (
            {g.lower() for g in reference},
            "match another cohort's only when case is ignored",
        ),
        "Ensembl": ({f"ENSG{i:011d}" for i in range(100)}, "100 Ensembl id"),
        "version suffixes": ({f"{g}.1" for g in reference}, "without their version suffix"),
        "few shared": (
            {f"GENE{i}" for i in range(40)} | {f"OTHER{i}" for i in range(100)},
            "shares 40 of its 140",
        ),
    }
    for name, (genes, words) in cases.items():
        with pytest.raises(InputDataError, match="cohorts/Mine.expression.tsv.gz") as err:
            check_gene_overlap({"Ref1": reference, "Ref2": reference, "Mine": genes}, sources, 0.5)
        assert words in str(err.value) and "ingestion.min_gene_overlap" in str(err.value), name
    # Excel-mangled symbols in a cohort that otherwise matches: accepted, and named.
    table = check_gene_overlap(
        {"Ref1": reference, "Ref2": reference, "Mine": (reference - {"MARCHF1"}) | {"1-Mar"}},
        sources,
        0.5,
    )
    assert table.set_index("cohort").loc["Mine", "n_shared"] == len(reference) - 1
    # Ensembl ids that other cohorts carry too (the shared cohorts' genes without a symbol)
    # are no mistake: no hint, no warning on every run.
    from icb_kedro.io.validation import gene_id_hint

    assert gene_id_hint(reference | {"ENSG00000230417"}, reference | {"ENSG00000230417"}) == ""


def test_an_empty_gene_list_is_refused():
    from icb_kedro.pipelines.ingestion.nodes import ingest_gene_list

    with pytest.raises(InputDataError, match="ic2bert_prior_genes.txt: lists no gene"):
        ingest_gene_list(
            pd.DataFrame({0: ["", "  "]}),
            {"data_dir": "/d", "ic2bert_prior_file": "ic2bert_prior_genes.txt"},
        )


def test_an_unreadable_file_names_the_file_and_the_cause_without_settings_dump(tmp_path):
    from kedro_datasets.pandas import CSVDataset

    from icb_kedro.io.readers import load_partition

    path = tmp_path / "Bad.expression.tsv.gz"
    path.write_bytes(b"this is not gzip")
    dataset = CSVDataset(filepath=str(path), load_args={"sep": "\t", "header": None, "dtype": str})
    with pytest.raises(InputDataError) as err:
        load_partition(dataset.load, str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: cannot read file (") and "gzip" in message.lower()
    assert "load_args" not in message and "protocol" not in message
