"""Published ICB gene signatures, parsed: the signature folder -> one long signature table.

The 39 gene-list files of ``<data>/signatures`` (bhklab icb_data_exploration_and_analysis)
plus ``signature_INFO.txt`` (method, association, PMID) become one long table
(:func:`parse_signature_files`), one row per (signature, subset, gene):

``signature, method, association, pmid, subset, gene, source_gene, weight``

``method`` is the scoring method used here (``signatures.SCORING_METHODS``, mapped from
INFO's method names); gene symbols are mapped through ``GENE_ALIASES``; IMPRES is given
as its published 15 gene pairs (``IMPRES_PAIRS``). How the methods are scored is in
:mod:`icb_kedro.models.baselines.signatures`, the coverage rule in
:mod:`icb_kedro.models.baselines.signature_coverage`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

INFO_FILE = "signature_INFO.txt"
IPS_FILE = "IPS_genes.txt"
SIGNATURE_COLUMNS: tuple[str, ...] = (
    "signature",
    "method",
    "association",
    "pmid",
    "subset",
    "gene",
    "source_gene",
    "weight",
)
ASSOCIATIONS: tuple[str, ...] = ("sensitive", "resistance")


# Symbols in the signature files that are not the data's HGNC symbols. Kept small and
# explicit (signatures_and_statistics.md, section 2): IL8 is CXCL8 (renamed), MA4A1 and
# D68 are typos of MS4A1 (B_cell_Budczies) and CD68 (Macrophage). Outdated symbols that
# the stats document does not list (e.g. C10orf54/VSIR) are left as they are.
GENE_ALIASES: dict[str, str] = {"IL8": "CXCL8", "MA4A1": "MS4A1", "D68": "CD68"}


# INFO's method names -> the scoring method used here (see the module docstring of ``signatures``).
_METHOD_OF_INFO = {"GSVA": "ssgsea", "weighted_mean": "weighted_mean"}
_SPECIFIC_METHODS = {
    "COX_IS": "cox_is",
    "IPRES": "ipres",
    "IPS": "ips",
    "TIDE": "tide",
    "IMPRES": "impres_pairs",
}
# NonResponse_SF has a gene file but no INFO row; its name and source (Sade-Feldman
# non-response genes) make it a resistance list scored like the other plain lists.
_MISSING_INFO = {"NonResponse_SF": ("GSVA", "resistance", "")}


# IMPRES (Auslander et al. 2018, PMID 30127394): 15 pairs (A, B); a pair counts when
# expr(A) > expr(B). Pairs and orientation as EaSIeR's compute_IMPRES (Gene_1 > Gene_2) and
# the IMPRES correspondence code (Carter et al.) define them. signatures_and_statistics.md
# section 3 writes the first and third as "PDCD1<TNFSF4" and "CTLA4<TNFSF4"; both sources
# above have PDCD1 > TNFSF4 and CTLA4 > TNFSF4, which is what is used here.
IMPRES_PAIRS: tuple[tuple[str, str], ...] = (
    ("PDCD1", "TNFSF4"),
    ("CD27", "PDCD1"),
    ("CTLA4", "TNFSF4"),
    ("CD40", "CD28"),
    ("CD86", "TNFSF4"),
    ("CD28", "CD86"),
    ("CD80", "TNFSF9"),
    ("CD274", "VSIR"),
    ("CD86", "HAVCR2"),
    ("CD40", "PDCD1"),
    ("CD86", "CD200"),
    ("CD40", "CD80"),
    ("CD28", "CD276"),
    ("CD40", "CD274"),
    ("TNFRSF14", "CD86"),
)


# ----------------------------------------------------------------------------- parsing


def _text_of(value: str | bytes | Callable[[], Any]) -> str:
    """Text of a partition: PartitionedDataset gives loaders; tests may give strings."""
    if callable(value):
        value = value()
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ValueError(f"signature file content must be text, got {type(value).__name__}")
    return value.lstrip("\ufeff")  # MPS.csv starts with a UTF-8 byte-order mark


def _clean_symbol(symbol: str) -> str:
    return symbol.strip().strip('"').strip()


def parse_signature_info(text: str) -> pd.DataFrame:
    """``signature_INFO.txt`` -> ``signature, info_method, association, pmid`` (one row each)."""
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    if not rows or [c.strip() for c in rows[0][:3]] != ["Signature", "method", "association"]:
        raise ValueError(
            f"{INFO_FILE}: expected the header 'Signature, method, association, PMID'; "
            f"got {rows[:1]}"
        )
    records = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 3:
            raise ValueError(f"{INFO_FILE} line {line}: expected 4 tab-separated fields, got {row}")
        association = row[2].strip()
        if association not in ASSOCIATIONS:
            raise ValueError(
                f"{INFO_FILE} line {line}: association {association!r} is not one of {ASSOCIATIONS}"
            )
        pmid = " ".join(row[3].split()) if len(row) > 3 else ""
        records.append(
            {
                "signature": row[0].strip(),
                "info_method": row[1].strip(),
                "association": association,
                "pmid": pmid,
            }
        )
    info = pd.DataFrame(records)
    duplicated = info["signature"].duplicated()
    if duplicated.any():
        raise ValueError(f"{INFO_FILE} lists {info['signature'][duplicated].tolist()} twice")
    return info


def _parse_gene_list(name: str, text: str) -> list[tuple[str, str, float]]:
    """A ``.csv`` signature: header row, then ``gene`` or ``gene;coef`` rows -> (subset, gene,
    weight)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"signature file {name!r} has no gene rows")
    weighted = ";" in lines[0]
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = [f.strip() for f in line.split(";")]
        if weighted:
            if len(fields) != 2:
                raise ValueError(
                    f"signature file {name!r} line {number}: expected 'gene;coef', got {line!r}"
                )
            try:
                weight = float(fields[1])
            except ValueError:
                raise ValueError(
                    f"signature file {name!r} line {number}: coefficient {fields[1]!r} is "
                    "not a number"
                ) from None
        else:
            weight = 1.0
        rows.append(("", _clean_symbol(fields[0]), weight))
    return rows


def _parse_ipres(text: str) -> list[tuple[str, str, float]]:
    """``IPRES.csv``: ``Geneset;Detail;gene.list`` rows -> one subset per gene set."""
    reader = csv.reader(io.StringIO(text), delimiter=";", quotechar='"')
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["Geneset", "Detail", "gene.list"]:
        raise ValueError(f"IPRES.csv: expected the header 'Geneset;Detail;gene.list', got {header}")
    rows = []
    for number, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(
                f"IPRES.csv line {number}: expected 3 ';'-separated fields, got {len(fields)}"
            )
        subset = fields[0].strip()
        genes = [_clean_symbol(g) for g in fields[2].split(",") if g.strip()]
        rows.extend((subset, gene, 1.0) for gene in dict.fromkeys(genes))
    return rows


def _parse_ips(text: str) -> list[tuple[str, str, float]]:
    """``IPS_genes.txt`` (``GENE NAME CLASS WEIGHT``): subset = class (MHC, CP, EC, SC)."""
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    if not rows or [c.strip() for c in rows[0]] != ["GENE", "NAME", "CLASS", "WEIGHT"]:
        raise ValueError(
            f"{IPS_FILE}: expected the header 'GENE NAME CLASS WEIGHT', got {rows[:1]}"
        )
    return [
        (r[2].strip(), _clean_symbol(r[0]), float(r[3])) for r in rows[1:] if r and r[0].strip()
    ]


def _scoring_method(signature: str, info_method: str) -> str:
    if signature in _SPECIFIC_METHODS:
        return _SPECIFIC_METHODS[signature]
    if info_method not in _METHOD_OF_INFO:
        raise ValueError(f"signature {signature!r}: unknown method {info_method!r} in {INFO_FILE}")
    return _METHOD_OF_INFO[info_method]


def parse_signature_files(files: Mapping[str, str | bytes | Callable[[], Any]]) -> pd.DataFrame:
    """Signature files (``{file name: text or loader}``, as a PartitionedDataset gives) -> long
    table.

    One row per (signature, subset, gene) with ``SIGNATURE_COLUMNS``; gene symbols are
    mapped through ``GENE_ALIASES`` (``source_gene`` keeps the file's symbol). Signatures
    listed in INFO without a gene file (TIDE) get one row with an empty gene, so the
    coverage table can report them.
    """
    by_stem = {name.rsplit("/", 1)[-1]: value for name, value in files.items()}
    info_key = next((k for k in by_stem if k.startswith(INFO_FILE.rsplit(".", 1)[0])), None)
    if info_key is None:
        raise ValueError(f"no {INFO_FILE} among the signature files {sorted(by_stem)}")
    info = parse_signature_info(_text_of(by_stem.pop(info_key))).set_index("signature")

    records = []
    seen = set()
    for key in sorted(by_stem):
        stem = key.split(".", 1)[0]
        text = _text_of(by_stem[key])
        if stem == "IPRES":
            signature, rows = "IPRES", _parse_ipres(text)
        elif key.startswith("IPS_genes"):
            signature, rows = "IPS", _parse_ips(text)
        else:
            signature, rows = stem, _parse_gene_list(key, text)
        if signature not in info.index and signature in _MISSING_INFO:
            method, association, pmid = _MISSING_INFO[signature]
            info.loc[signature] = {"info_method": method, "association": association, "pmid": pmid}
        if signature not in info.index:
            raise ValueError(f"signature file {key!r} has no row in {INFO_FILE}")
        seen.add(signature)
        meta = info.loc[signature]
        method = _scoring_method(signature, meta["info_method"])
        if method == "impres_pairs":  # the published pairs replace INFO's 28-gene weighted mean
            rows = [(f"{a}>{b}", gene, 1.0) for a, b in IMPRES_PAIRS for gene in (a, b)]
        for subset, gene, weight in rows:
            records.append(
                {
                    "signature": signature,
                    "method": method,
                    "association": meta["association"],
                    "pmid": meta["pmid"],
                    "subset": subset,
                    "gene": GENE_ALIASES.get(gene, gene),
                    "source_gene": gene,
                    "weight": float(weight),
                }
            )
    for signature in sorted(set(info.index) - seen):  # e.g. TIDE: INFO row, no gene file
        meta = info.loc[signature]
        records.append(
            {
                "signature": signature,
                "method": _scoring_method(signature, meta["info_method"]),
                "association": meta["association"],
                "pmid": meta["pmid"],
                "subset": "",
                "gene": "",
                "source_gene": "",
                "weight": np.nan,
            }
        )
    table = pd.DataFrame(records, columns=list(SIGNATURE_COLUMNS))
    bad_weights = table[
        (table["gene"] != "") & ~table["weight"].isin((-1.0, 1.0)) & (table["method"] != "ips")
    ]
    if len(bad_weights):
        raise ValueError(
            "signature weights must be +-1; got "
            f"{bad_weights[['signature', 'gene', 'weight']].head(3).to_dict('records')}"
        )
    return table
