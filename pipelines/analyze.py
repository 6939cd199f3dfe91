"""`mlflow run . -e analyze -P results=grid-output/results.parquet`: statistics and report."""
import sys

from _params import cli_args

from xstilts.cli import main

if __name__ == "__main__":
    main(["analyze", *cli_args(sys.argv[1:])], prog_name="xstilts")
