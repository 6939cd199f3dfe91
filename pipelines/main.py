"""`mlflow run . -e main`: the project's main job.

Until the experiment grid exists this is the encoder check (Tatoeba retrieval on
the XTREME languages), logged into the MLflow run that `mlflow run` started.
Thin by design: MLflow params arrive as CLI flags, the library does the work.
"""
import sys

from _params import cli_args

from xstilts.cli import main

if __name__ == "__main__":
    main(["model", "check", "--track", *cli_args(sys.argv[1:])], prog_name="xstilts")
