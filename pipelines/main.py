"""`mlflow run . -e main`: the project's main job, the experiment grid.

Thin by design: the grid config file is the single source of truth; the run that
`mlflow run` started becomes the grid's parent run.
"""
import sys

from _params import cli_args

from xstilts.cli import main

if __name__ == "__main__":
    main(["grid", *cli_args(sys.argv[1:])], prog_name="xstilts")
