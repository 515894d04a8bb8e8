"""Dataset QA (``pairforge check``): a feature package above the core and the pipelines.

:mod:`~pairforge.check.check` reads and judges a pair folder or shard set,
:mod:`~pairforge.check.measures` measures one pair, :mod:`~pairforge.check.neardup`
finds near-duplicates and :mod:`~pairforge.check.report` writes report.html. It may
import the core and the pipelines (one Canny, :func:`pairforge.pipelines.canny.canny_mask`;
one Lab, :mod:`pairforge.lab`), never the commands.
"""

from pairforge.check.check import (
    CHECK_FORMAT,
    PROBLEMS,
    CheckConfig,
    CheckResult,
    DatasetSource,
    check_json,
    fix_splits,
    judge,
    measure_config_for,
    open_source,
    run_check,
    write_outputs,
)
from pairforge.check.measures import EdgeRecipe, MeasureConfig
from pairforge.check.report import render_report, write_report

__all__ = [
    "CHECK_FORMAT",
    "PROBLEMS",
    "CheckConfig",
    "CheckResult",
    "DatasetSource",
    "EdgeRecipe",
    "MeasureConfig",
    "check_json",
    "fix_splits",
    "judge",
    "measure_config_for",
    "open_source",
    "render_report",
    "run_check",
    "write_outputs",
    "write_report",
]
