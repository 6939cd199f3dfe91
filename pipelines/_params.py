"""MLflow Projects pass every parameter, so "unset" needs a value: an empty string
or "none" drops the flag, and floats MLflow wrote for integer flags ("3.0") are
turned back into integers."""

INT_FLAGS = {"--max-examples", "--max-dev-examples", "--seed", "--max-steps", "--batch-size", "--max-length",
             "--num-layers", "--max-pairs", "--threads", "--n-trials"}
UNSET = {"", "none", "None", "null"}
BOOL_FLAGS = {"--no-progress", "--json", "--track"}
ZERO_MEANS_ALL = {"--max-examples", "--max-dev-examples", "--max-steps"}


def cli_args(argv: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        flag = argv[i]
        if flag in BOOL_FLAGS:
            out.append(flag)
            i += 1
        elif flag.startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = argv[i + 1]
            i += 2
            if value in UNSET:
                continue
            if flag in INT_FLAGS:
                value = str(int(float(value)))
                if flag in ZERO_MEANS_ALL and value == "0":
                    continue
            out += [flag, value]
        elif flag.startswith("--") and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
            i += 1  # a flag whose value MLflow left empty
        else:
            out.append(flag)
            i += 1
    return out
