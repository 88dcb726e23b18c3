"""AMU (Attention mechanism Model for melanoma iMMUnotherapy response) in PaddlePaddle.

Modules: ``features`` (log constituent ratios; numpy only), ``model`` (the AMU
``paddle.nn.Layer``), ``cnn`` (the AMU paper's small CNN and its scikit-learn wrapper
``AmuCnnClassifier``), ``estimators`` (scikit-learn wrappers), ``train`` (seeded CPU
fit/predict), ``runner`` (folds in parallel), ``pyfunc`` (MLflow model), ``plots``.
This package imports nothing heavy itself: import the submodule you need (Paddle loads
with ``model``/``cnn``/``train``/``pyfunc``).
"""
