"""IC2Bert in JAX/Haiku/Optax (model_spec.md section 2, with the section 3 fixes).

Model: ``config`` (architecture settings, no JAX), ``tokenizer`` (per-gene quantile bins,
numpy), ``model`` (hk.Modules), ``masking``, ``weights`` (initial parameters, host copies,
the classification head), ``checkpoint`` (orbax resumable state, model bundles), ``predict``
(probabilities, pooled features, attention importance), ``readout`` (linear readouts),
``pyfunc`` (MLflow). Training: ``train_config`` (settings and size tiers, no JAX; typed as
parameter blocks give them in ``settings``), ``optim``
(TrainingState, the optax chain), ``batching``, ``losses``, ``pretrain_loop``,
``finetune_loop`` (``train`` only re-exports ``init_params`` for older callers).
The pipelines' protocols: ``pretraining`` (one held-out cohort's pretraining run);
``fold_inputs``, ``finetune_history``, ``readout_arms`` and ``finetune_fits`` (what the
fine-tuning protocols share), ``transfer``, ``within``, ``loco``, ``sample_size``,
``registration``, ``learning_check`` and ``figures``.
Import the submodules you need: this package's ``__init__`` imports nothing heavy.
"""
