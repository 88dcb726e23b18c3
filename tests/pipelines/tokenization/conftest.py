"""Fixtures for the tokenization tests (data from ``synthetic.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest


def load_synthetic():
    spec = importlib.util.spec_from_file_location(
        "ic2bert_synthetic", Path(__file__).with_name("synthetic.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synthetic = load_synthetic()


@pytest.fixture
def expression() -> pd.DataFrame:
    return synthetic.synthetic_expression()


@pytest.fixture
def folds(expression) -> dict[str, pd.DataFrame]:
    return synthetic.synthetic_folds(expression)
