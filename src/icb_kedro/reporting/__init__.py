"""Reporting: evaluation figures (:mod:`~icb_kedro.reporting.plots`) and the HTML report."""
