"""`mlflow run . -e intermediate`: intermediate-task training (thin: flags -> `xstilts intermediate`)."""
import sys

from _params import cli_args

from xstilts.cli import main

if __name__ == "__main__":
    main(["intermediate", *cli_args(sys.argv[1:])], prog_name="xstilts")
