"""Parse raw cohort files into typed tables; every failure names file, column and row.

The readers live in sibling modules: ``raw_tables`` (partition loading, the header row),
``expression_reader`` (expression files, shared by ingestion and ``predict``),
``clinical_reader`` (clinical files and their match to expression) and
``amu_matrix_reader`` (the AMU study's matrix). The names used elsewhere stay importable
from here.
"""

from __future__ import annotations

from .amu_matrix_reader import parse_amu_matrix
from .clinical_reader import check_samples_match, parse_clinical
from .expression_reader import parse_expression
from .raw_tables import load_partition, materialize

__all__ = [
    "check_samples_match",
    "load_partition",
    "materialize",
    "parse_amu_matrix",
    "parse_clinical",
    "parse_expression",
]
