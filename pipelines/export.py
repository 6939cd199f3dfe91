"""`mlflow run . -e export -P model=models:/xstilts-target-panx@champion [-P quantize=int8]`.

Thin: MLflow params become `xstilts export` flags (empty ones dropped); the export run is
the run `mlflow run` started (a child of the model's training run when there is one).
"""
import sys

from _params import cli_args

from xstilts.cli import main

if __name__ == "__main__":
    main(["export", *cli_args(sys.argv[1:])], prog_name="xstilts")
