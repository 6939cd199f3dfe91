"""`mlflow run . -e evaluate -P model=models:/xstilts-target-panx/1 -P task=panx`.

Thin by design: MLflow params arrive as CLI flags and are translated to
`xstilts evaluate` options; the library does the work and logs into the run that
`mlflow run` started (tagged as a child of the model's training run). With `out`
left empty the prediction files and the report are only the run's artifacts: MLflow
runs this in the project folder (a temporary clone for a git URI), not where
`mlflow run` was typed.
"""
import sys
import tempfile

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
        elif flag == "--out" and not value:
            continue  # a temporary folder instead (below)
        else:
            out += [flag, value]
    return out


if __name__ == "__main__":
    args = translate(sys.argv[1:])
    if "--out" in args:
        main(["evaluate", *args], prog_name="xstilts")
    else:
        with tempfile.TemporaryDirectory(prefix="xstilts-evaluate-") as tmp:  # removed after logging
            main(["evaluate", *args, "--out", tmp], prog_name="xstilts")
