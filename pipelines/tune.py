"""`mlflow run . -e tune`: an Optuna study for one target task (thin: flags -> `xstilts tune`)."""
import sys

from _params import cli_args

from xstilts.cli import main

if __name__ == "__main__":
    main(["tune", *cli_args(sys.argv[1:])], prog_name="xstilts")
