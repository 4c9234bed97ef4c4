"""Example evaluate operator: scores the model version its upstream node trained on a test source.

Use it as moduleName `runtime_agent.examples.evaluate_example`, executeObject `EvaluateExample`,
operatorRuntimeType REASONING, on a node whose inputs name the upstream model
(`inputs: {model: train.model}`) and with a `test_source` holding the label column
(`operatorConf.labelColumn`, default `label`). The agent fetches that version into `ctx.model_dir`;
every batch of the test source is predicted and compared with its labels, and the accuracy is
reported as `score` (and `accuracy`) when the source is read. Control records that score as the
version's evaluated score; with deployType AUTO_DEPLOY the version is deployed when it beats the
version being served (see `control.pipeline.best_version`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from runtime_agent.examples.train_example import TabularReasoning

if TYPE_CHECKING:
    import pandas as pd

    from runtime_agent.context import OperatorContext


class EvaluateExample(TabularReasoning):
    """Accuracy of a `TrainExample` model on the run's test source, reported as `score`."""

    read_roles: ClassVar[tuple[str, ...]] = ("test_source",)

    def __init__(self) -> None:
        super().__init__()
        self.correct = 0
        self.total = 0

    def operate_execute(self, batch: pd.DataFrame, ctx: OperatorContext) -> Any:
        label = str(ctx.operator_conf.get("labelColumn") or self.spec.label)
        predicted = self.predict(batch)["prediction"].to_numpy()
        self.correct += int((predicted == batch[label].to_numpy()).sum())
        self.total += len(batch)

    def task_finish_execute(self, ctx: OperatorContext) -> Any:
        if not self.total:
            raise ValueError("the test source had no rows to score the model on")
        accuracy = self.correct / self.total
        ctx.logger.info("evaluated on %d rows: accuracy %.4f", self.total, accuracy)
        ctx.report({"score": accuracy, "accuracy": accuracy})
