"""AMU (Attention mechanism Model for melanoma iMMUnotherapy response) in PaddlePaddle.

Modules: ``features`` (log constituent ratios; numpy only), ``model`` (the AMU
``paddle.nn.Layer``; ``fused``/``attention_kernels``: its fast CPU engine), ``cnn`` (the AMU
paper's small CNN), ``train`` (seeded CPU fit/predict), ``estimators`` (scikit-learn
wrappers ``AmuClassifier``, ``AmuCnnClassifier``), ``runner`` (folds in parallel), ``pyfunc``
(MLflow model), ``plots``. Imports run one way (estimators -> train -> model, cnn; no
circle). This package imports nothing heavy itself: import the submodule you need (Paddle
loads with ``model``/``cnn``/``train``/``estimators``/``pyfunc``).
"""
