"""Classical baselines and published gene signatures.

Modules: ``estimators`` (model specs, scikit-learn / XGBoost / imbalanced-learn pipelines,
the AMU search grids), ``fold_fit`` (one leak-free fold fit: :func:`fold_fit.fit_predict_fold`),
``fold_tables`` (fold arrays, fit settings, prediction tables), ``protocol_runs`` (a model on
every fold of every protocol, in parallel, with its search log), ``deployment`` (the
registered ``icb_baseline``), ``pyfunc`` (its MLflow flavor), ``signature_files`` (parsing
the signature folder), ``signature_coverage`` (the coverage rule), ``signatures``
(training-free scores) and ``signature_predictions`` (signatures on the shared folds).
Nothing is imported here, so importing the package stays cheap.
"""
