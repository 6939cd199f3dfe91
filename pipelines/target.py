"""`mlflow run . -e target`: target-task training on English (thin: flags -> `xstilts target`)."""
import sys

from _params import cli_args

from xstilts.cli import main

if __name__ == "__main__":
    main(["target", *cli_args(sys.argv[1:])], prog_name="xstilts")
