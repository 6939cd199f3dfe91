"""`mlflow run . -e evaluate -P model=models:/xstilts-target-panx/1 -P task=panx`.

Thin by design: MLflow params arrive as CLI flags and are translated to
`xstilts evaluate` options; the library does the work and logs into the run that
`mlflow run` started (tagged as a child of the model's training run). With `out`
left empty the prediction files and the report are only the run's artifacts: MLflow
runs this in the project folder (a temporary clone for a git URI), not where
`mlflow run` was typed.
"""
import sys

from xstilts.cli import main

INTEGER_FLAGS = {"--max-examples", "--batch-size"}
PRECISION = {"auto": [], "bf16": ["--bf16"], "fp32": ["--fp32"]}


def translate(argv: list[str]) -> list[str]:
    """MLflow's strings (floats as "64.0", precision/layer words) -> CLI options."""
    out: list[str] = []
    it = iter(argv)
    for flag in it:
        value = next(it)
        if flag in INTEGER_FLAGS:
            out += [flag, str(int(float(value)))]
        elif flag == "--precision":
            if value not in PRECISION:
                sys.exit(f"evaluate: precision must be one of {', '.join(PRECISION)}, got {value!r}")
            out += PRECISION[value]
        elif flag == "--layer":
            out += [] if value == "auto" else [flag, str(int(float(value)))]
        else:
            out += [flag, value]
    return out


if __name__ == "__main__":
    main(["evaluate", *translate(sys.argv[1:])], prog_name="xstilts")  # out '': the files as artifacts only
