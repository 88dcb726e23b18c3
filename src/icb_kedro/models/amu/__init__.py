"""AMU (Attention mechanism Model for melanoma iMMUnotherapy response) in PaddlePaddle.

Modules: ``features`` (log constituent ratios; numpy only), ``architecture`` (the network's
settings, plain data), ``model`` (the AMU ``paddle.nn.Layer``; ``fused``/``attention_kernels``:
its fast CPU engine), ``cnn`` (the AMU paper's small CNN), ``train`` (seeded CPU fit/predict)
with ``train_config`` (its settings, plain data),
``fitted_network`` (a fit as plain data; numpy only) and ``paddle_runtime`` (device, threads,
seed), ``estimators`` (scikit-learn wrappers ``AmuClassifier``, ``AmuCnnClassifier``),
``runner`` (folds in parallel), ``pyfunc`` (MLflow model), ``plots``. What the amu pipeline's
nodes call: ``inputs`` (labels, panel, the cohorts' features), ``protocol_runs`` (study
setting, leakage audit, one held-out cohort), ``results`` (combined predictions, learning
check, report), ``final_model`` (the deployable model). Imports run one way (estimators ->
train -> model, cnn; no circle). This package imports nothing heavy itself: import the
submodule you need (Paddle loads with ``model``/``cnn``/``train``/``paddle_runtime``/
``estimators``/``pyfunc``). ``architecture`` and ``train_config`` hold the defaults of the
typed ``params:amu`` block (``icb_kedro.models.amu.parameters``).
"""
