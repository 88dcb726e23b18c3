"""Every bad-input case fails with a message naming the file, the column and the row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.io.amu_matrix_reader import parse_amu_matrix
from icb_kedro.io.clinical_reader import check_samples_match, parse_clinical
from icb_kedro.io.expression_reader import apply_missing_policy, parse_expression
from icb_kedro.io.raw_tables import load_partition
from icb_kedro.io.validation import InputDataError
from icb_kedro.pipelines.ingestion.nodes import ingest_cohorts, select_cohorts

SRC = "cohorts/Toy.expression.tsv.gz"
CLIN = "cohorts/Toy.clinical.tsv"


def raw_expression(rows: list[list[str]], header=("gene", "S1", "S2", "S3")) -> pd.DataFrame:
    """What the catalog hands over: header as row 0, every cell a string."""
    return pd.DataFrame([list(header), *rows], dtype=object)


GOOD_ROWS = [
    ["CD8A", "1.0", "2.0", "-9.96578428466209"],
    ["GZMA", "0.5", "3.5", "-9.96578428466209"],
]  # TPM 0: at the floor


def raw_clinical(
    responses=("R", "NR", None), samples=("S1", "S2", "S3"), recist=("PR", "PD", "SD")
) -> pd.DataFrame:
    header = ["sample_id", "response", "recist", "survival_time_os", "event_occurred_os"]
    rows = [[s, r, c, "10.5", "1"] for s, r, c in zip(samples, responses, recist)]
    return pd.DataFrame([header, *rows], dtype=object)


def test_parse_expression_is_sample_major_and_typed():
    table, report = parse_expression(raw_expression(GOOD_ROWS), SRC)
    assert list(table.index) == ["S1", "S2", "S3"]
    assert list(table.columns) == ["CD8A", "GZMA"]
    assert table.dtypes.eq("float64").all()
    assert table.loc["S3", "CD8A"] == pytest.approx(-9.96578428466209)
    assert report["n_missing_values"] == 0


def test_duplicate_gene_names_file_and_line():
    rows = [*GOOD_ROWS, ["CD8A", "1", "1", "1"]]
    with pytest.raises(
        InputDataError, match=r"Toy.expression.tsv.gz: duplicate gene.*'CD8A': \[2, 4\]"
    ):
        parse_expression(raw_expression(rows), SRC)


def test_duplicate_sample_ids_are_caught_before_pandas_renames_them():
    with pytest.raises(InputDataError, match=r"duplicate sample id.*'S1'"):
        parse_expression(raw_expression(GOOD_ROWS, header=("gene", "S1", "S1", "S3")), SRC)


def test_non_numeric_value_names_sample_and_gene():
    rows = [["CD8A", "1.0", "high", "2"], GOOD_ROWS[1]]
    with pytest.raises(InputDataError, match=r"sample\) 'S2', row \(gene\) 'CD8A': 'high'"):
        parse_expression(raw_expression(rows), SRC)


def test_values_impossible_for_log2_tpm_scale():
    rows = [["CD8A", "1.0", "25.0", "2"], ["GZMA", "-12", "1", "1"]]
    with pytest.raises(InputDataError) as err:
        parse_expression(raw_expression(rows), SRC)
    message = str(err.value)
    assert SRC in message and "'CD8A'" in message and "'S2'" in message and "25.0" in message
    assert "'GZMA'" in message and "'S1'" in message


def test_missing_values_policy_error_names_cells():
    rows = [["CD8A", "1.0", None, "2"], GOOD_ROWS[1]]
    with pytest.raises(InputDataError, match=r"1 missing value.*\('S2', 'CD8A'\)"):
        parse_expression(raw_expression(rows), SRC, missing_policy="error")


def test_missing_values_imputed_with_gene_median_and_counted():
    rows = [["CD8A", "1.0", None, "3.0"], GOOD_ROWS[1]]
    table, report = parse_expression(raw_expression(rows), SRC, missing_policy="impute_gene_median")
    assert table.loc["S2", "CD8A"] == pytest.approx(2.0)
    assert report == {
        "n_missing_values": 1,
        "missing_policy": "impute_gene_median",
        "genes_with_missing": 1,
    }
    assert table.shape == (3, 2)  # nothing dropped


def test_missing_values_impute_floor():
    table = pd.DataFrame({"G": [1.0, np.nan]}, index=["a", "b"])
    filled, report = apply_missing_policy(table, "impute_floor", SRC)
    assert filled.loc["b", "G"] == pytest.approx(np.log2(0.001))
    assert report["n_missing_values"] == 1


def test_unreadable_file_names_the_file():
    def broken():
        raise OSError("not a gzip file")

    with pytest.raises(
        InputDataError,
        match=r"Toy.expression.tsv.gz: cannot read file \(OSError: not a gzip file\)",
    ):
        load_partition(broken, SRC)


def test_missing_partner_file_is_named():
    with pytest.raises(InputDataError, match=r"missing clinical file.*Extra.clinical.tsv"):
        select_cohorts(["Toy", "Extra"], ["Toy"], None, "cohorts")
    with pytest.raises(InputDataError, match=r"missing expression file.*Extra.expression.tsv.gz"):
        select_cohorts(["Toy"], ["Toy", "Extra"], None, "cohorts")
    with pytest.raises(InputDataError, match="no '\\*.expression.tsv.gz' cohort files"):
        select_cohorts([], [], None, "cohorts")


def test_unknown_response_code_names_line_and_column():
    with pytest.raises(InputDataError) as err:
        parse_clinical(raw_clinical(responses=("R", "maybe", None)), CLIN)
    assert CLIN in str(err.value) and "'response'" in str(err.value) and "line 3" in str(err.value)
    assert "'maybe'" in str(err.value)


def test_unknown_recist_code_and_negative_survival():
    raw = raw_clinical(recist=("PR", "XX", "SD"))
    raw.iloc[1, 3] = "-3"
    with pytest.raises(InputDataError) as err:
        parse_clinical(raw, CLIN)
    assert "'recist'" in str(err.value) and "'XX'" in str(err.value)
    assert "'survival_time_os'" in str(err.value)


def test_unknown_strict_response_code_is_refused():
    """``response_recist`` (optional) holds R / NR like ``response``: a free-text call there
    would silently leave the sample unlabelled under the strict label rule."""
    raw = raw_clinical()
    raw[5] = ["response_recist", "R", "CR/PR", None]
    with pytest.raises(InputDataError) as err:
        parse_clinical(raw, CLIN)
    assert "'response_recist'" in str(err.value) and "'CR/PR'" in str(err.value)
    assert "line 3" in str(err.value)


def test_duplicate_clinical_sample_ids():
    with pytest.raises(InputDataError, match=r"duplicate sample_id.*'S1': \[2, 3\]"):
        parse_clinical(raw_clinical(samples=("S1", "S1", "S3")), CLIN)


def test_samples_in_clinical_but_not_expression_and_reverse():
    expr, _ = parse_expression(raw_expression(GOOD_ROWS), SRC)
    clin = parse_clinical(raw_clinical(samples=("S1", "S2", "S9")), CLIN)
    with pytest.raises(
        InputDataError, match=r"Toy.clinical.tsv: sample_id\(s\) with no column in .*\['S9'\]"
    ):
        check_samples_match(expr, clin, SRC, CLIN)
    clin = parse_clinical(raw_clinical(samples=("S1", "S2"), responses=("R", "NR")), CLIN)
    with pytest.raises(
        InputDataError, match=r"Toy.expression.tsv.gz: sample column\(s\) with no row .*\['S3'\]"
    ):
        check_samples_match(expr, clin, SRC, CLIN)


def test_cohort_without_labelled_samples_is_refused():
    params = {
        "data_dir": "/data",
        "missing_values": {"policy": "error"},
        "recist_labels": {"CR": 1, "PR": 1, "PD": 0},
    }
    clinical = raw_clinical(responses=(None, None, None), recist=("SD", None, "SD"))
    with pytest.raises(
        InputDataError, match=r"Toy.clinical.tsv: cohort 'Toy' has no labelled sample"
    ):
        ingest_cohorts(
            {"Toy": lambda: raw_expression(GOOD_ROWS)}, {"Toy": lambda: clinical}, params
        )


def test_ingest_cohorts_reports_and_types():
    params = {
        "data_dir": "/data",
        "missing_values": {"policy": "impute_gene_median"},
        "recist_labels": {"PD": 0},
    }
    expr, clin, report = ingest_cohorts(
        {"Toy": lambda: raw_expression(GOOD_ROWS)}, {"Toy": lambda: raw_clinical()}, params
    )
    # Gene-major partitions (the file's own layout: fast parquet for 20,000-gene cohorts).
    assert list(expr["Toy"].columns) == ["gene", "S1", "S2", "S3"]
    assert expr["Toy"]["gene"].tolist() == ["CD8A", "GZMA"]
    assert clin["Toy"]["sample_id"].tolist() == ["S1", "S2", "S3"]
    assert report.loc[0, "expression_file"] == "/data/cohorts/Toy.expression.tsv.gz"
    assert report.loc[0, "n_samples"] == 3


def amu_raw(values: list[list[str]]) -> pd.DataFrame:
    return pd.DataFrame([["G1", "G2", "response"], *values], dtype=object)


def test_amu_matrix_checks_ratios_labels_and_rows():
    table = parse_amu_matrix(
        amu_raw([["0.25", "0.75", "1"], ["1.0", "0", "0"]]), "amu.csv", n_genes=2
    )
    assert table["sample_key"].tolist() == ["amu_000", "amu_001"]
    assert table["label"].tolist() == [1, 0]
    with pytest.raises(InputDataError, match=r"amu.csv: rows must sum to 1.*lines \[3\]"):
        parse_amu_matrix(
            amu_raw([["0.25", "0.75", "1"], ["0.5", "0.2", "0"]]), "amu.csv", n_genes=2
        )
    with pytest.raises(InputDataError, match=r"column 'response' must be 0/1, lines \[2\]"):
        parse_amu_matrix(amu_raw([["0.25", "0.75", "2"]]), "amu.csv", n_genes=2)
    with pytest.raises(InputDataError, match=r"column 'G2', line 2: 'x'"):
        parse_amu_matrix(amu_raw([["0.25", "x", "1"]]), "amu.csv", n_genes=2)
    # A gene column missing: said as such, not as "rows must sum to 1".
    with pytest.raises(
        InputDataError, match=r"amu.csv: 2 gene columns, the AMU study's matrix has 160"
    ):
        parse_amu_matrix(amu_raw([["0.25", "0.75", "1"]]), "amu.csv")


def test_a_renamed_copy_of_a_real_cohort_is_refused_as_duplicate_samples(shared_data_dir):
    """A cohort added twice under another name (or one patient filed in two cohorts) would
    put test patients into their own training rows: refused, naming the pairs. The real
    cohorts' distinct patients pass."""
    from icb_kedro.io.validation import check_duplicate_samples
    from icb_kedro.pipelines.predict.nodes import read_expression_file

    hugo = read_expression_file(
        {"input_path": str(shared_data_dir / "cohorts/Melanoma_PD1_Hugo2016.expression.tsv.gz")}
    )
    riaz = read_expression_file(
        {
            "input_path": str(
                shared_data_dir / "cohorts/Melanoma_Nivolumab_Riaz2017.expression.tsv.gz"
            )
        }
    )
    genes = hugo.columns.intersection(riaz.columns)
    keys = [f"Hugo:{s}" for s in hugo.index] + [f"Riaz:{s}" for s in riaz.index]
    real = np.vstack([hugo[genes].to_numpy(), riaz[genes].to_numpy()])
    check_duplicate_samples(real, keys, 0.999)  # distinct patients: no error
    copy_keys = keys + [f"MyClinic:MC-{i:03d}" for i in range(len(hugo))]
    with pytest.raises(
        InputDataError, match=r"27 pair\(s\) of samples with Pearson r >= 0.999"
    ) as err:
        check_duplicate_samples(
            np.vstack([real, hugo[genes].to_numpy()]), copy_keys, 0.999, block=50
        )
    assert f"Hugo:{hugo.index[0]} ~ MyClinic:MC-000: r = 1.0000" in str(err.value)
    assert "... and 17 more" in str(err.value)
