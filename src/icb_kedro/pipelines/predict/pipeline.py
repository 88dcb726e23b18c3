"""predict pipeline: ``kedro run --pipelines predict --params "predict.input_path=new.tsv.gz"``.

Reads an expression file, loads a registered IC2Bert pyfunc (``predict.model_uri`` or the
model registered for ``predict.held_out``, version ``predict.model_version``/alias
``predict.model_alias``) and writes ``data/07_model_output/ic2bert_scores.parquet``.
It depends on ``ic2bert_registered_models``, so in a full run it comes after registration.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import read_expression_file, score_expression


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                read_expression_file,
                "params:predict",
                "ic2bert_predict_input",
                name="ic2bert_read_expression_file",
            ),
            Node(
                score_expression,
                ["ic2bert_predict_input", "ic2bert_registered_models", "params:predict"],
                "ic2bert_scores",
                name="ic2bert_score_expression",
            ),
        ]
    )
