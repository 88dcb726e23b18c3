"""IC2Bert in JAX/Haiku/Optax (model_spec.md section 2, with the section 3 fixes).

Modules: ``config`` (architecture settings, no JAX), ``tokenizer`` (per-gene quantile bins,
numpy), ``model`` (hk.Modules), ``masking``, ``train`` (TrainingState, the optax chain,
pretraining and fine-tuning loops), ``checkpoint`` (orbax resumable state, model bundles),
``predict`` (probabilities, pooled features, attention importance), ``pyfunc`` (MLflow).
Import the submodules you need: this package's ``__init__`` imports nothing heavy.
"""
