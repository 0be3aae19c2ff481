"""msa-eval: MMSA-exact metrics, prediction scoring and the paper's report (tables, intervals, plots)."""

from msa_eval.bootstrap import bootstrap_ci, bootstrap_distribution, paired_bootstrap
from msa_eval.metrics import (
    MOSI_KEYS,
    PERCENT_KEYS,
    SIMS_KEYS,
    MetricWarning,
    PerSample,
    compute_metrics,
    evaluate,
    metric_keys,
    prepare,
    value_keys,
)
from msa_eval.predictions import (
    FAILURE_POLICIES,
    NEUTRAL_SCORE,
    Predictions,
    Resolved,
    apply_failure_policy,
    read_predictions,
)
from msa_eval.report import OUTPUT_FILES, ReportResult, ReportWarning, write_report
from msa_eval.score import score_file

__all__ = [
    "FAILURE_POLICIES",
    "MOSI_KEYS",
    "NEUTRAL_SCORE",
    "OUTPUT_FILES",
    "PERCENT_KEYS",
    "SIMS_KEYS",
    "MetricWarning",
    "PerSample",
    "Predictions",
    "ReportResult",
    "ReportWarning",
    "Resolved",
    "apply_failure_policy",
    "bootstrap_ci",
    "bootstrap_distribution",
    "compute_metrics",
    "evaluate",
    "metric_keys",
    "paired_bootstrap",
    "prepare",
    "read_predictions",
    "score_file",
    "value_keys",
    "write_report",
]
