"""Classical baselines and published gene signatures.

Modules: ``estimators`` (scikit-learn / XGBoost / imbalanced-learn pipelines, the AMU
search grids, one leak-free fold fit: :func:`estimators.fit_predict_fold`) and
``signatures`` (the signature files, the coverage rule, training-free scores). Nothing is
imported here, so importing the package stays cheap.
"""
