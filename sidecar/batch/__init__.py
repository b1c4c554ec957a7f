"""`retouch-sidecar apply` and `batch`: retouch image files through a sidecar.

A batch's jobs are submitted in order (heroes first), a few unfinished at a time. With
a sidecar on this machine, the sidecar reads each input file and writes each output
itself; otherwise inputs are uploaded and results fetched. Outputs keep the input's
format and bit depth and are written atomically, so an interrupted run leaves whole
files or none. A rerun skips outputs newer than their inputs, and the sidecar's result
cache answers the rest that it has already done.

- recipe.py: the op, intensity and params from the arguments (`UsageError`: exit 2)
- plan.py: which files, heroes first, outputs newer than inputs skipped, documents
  that cannot be written back refused from their header
- run.py (and prior.py, the color session prior): submit and collect on a client
  of the sidecar (`sidecar.client`); this room speaks to the sidecar only through it
- outputs.py: what is uploaded, and a fetched result written as the output file (as
  `imaging.outputs`, where the sidecar writes its jobs' output files, does)
- report.py, display.py: outcomes, the summary and the exit code; the progress bars
- on_cluster.py, cluster_display.py: `batch --cluster`, the same files done on a Ray
  cluster (`sidecar.cluster`) instead of a sidecar, and its progress (a row per worker)
- command.py: `run_command`, which cli.py calls
"""

from .command import EXIT_INTERRUPTED, run_command, run_tasks
from .display import Display
from .outputs import LAYER_NAMES, result_format, upload_body, write_output
from .plan import IMAGE_TYPES, FileTask, image_files, plan_apply, plan_batch
from .prior import SessionPrior
from .recipe import Recipe, UsageError, parse_params, parse_value, recipe_from_args
from .report import Outcome, Report
from .run import process

__all__ = [
    "EXIT_INTERRUPTED",
    "IMAGE_TYPES",
    "LAYER_NAMES",
    "Display",
    "FileTask",
    "Outcome",
    "Recipe",
    "Report",
    "SessionPrior",
    "UsageError",
    "image_files",
    "parse_params",
    "parse_value",
    "plan_apply",
    "plan_batch",
    "process",
    "recipe_from_args",
    "result_format",
    "run_command",
    "run_tasks",
    "upload_body",
    "write_output",
]
