"""`mlflow run . -e check`: the encoder check (Tatoeba retrieval on the XTREME languages)."""
import sys

from _params import cli_args

from xstilts.cli import main

if __name__ == "__main__":
    main(["model", "check", "--track", *cli_args(sys.argv[1:])], prog_name="xstilts")
