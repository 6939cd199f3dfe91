"""`mlflow run . -e main`: the project's main job.

Until the experiment grid exists this is the encoder check (Tatoeba retrieval on
the XTREME languages), logged into the MLflow run that `mlflow run` started.
Thin by design: MLflow params arrive as CLI flags, the library does the work.
"""
import sys

from xstilts.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    # MLflow passes numeric params as floats ("0.0"); the CLI wants an int.
    args = [str(int(float(a))) if i > 0 and args[i - 1] == "--max-pairs" else a for i, a in enumerate(args)]
    main(["model", "check", "--track", *args], prog_name="xstilts")
