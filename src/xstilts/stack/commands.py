"""``xstilts server start|stop|status``: the local PostgreSQL + MLflow server stack."""
from __future__ import annotations

import click

DATA_DIR_HELP = "Where PostgreSQL's data, the served artifacts and the logs live."


@click.group("server")
def server_group() -> None:
    """A local tracking stack: PostgreSQL and `mlflow server` with served artifacts, on 127.0.0.1.

    `eval "$(xstilts server start)"` sets MLFLOW_TRACKING_URI, XSTILTS_CLAIMS_URL and
    XSTILTS_OPTUNA_STORAGE for the shell; grids, tuning and Ray workers then share it.
    """


def _print_env(stack) -> None:
    for key, value in stack.environment().items():
        click.echo(f"export {key}={value}")
    click.echo(f"# Optuna storage (xstilts tune --storage): {stack.db_url('optuna')}")
    click.echo(f"# stop with: xstilts server stop --data-dir {stack.data_dir}")


@server_group.command("start")
@click.option("--data-dir", default="xstilts-server", show_default=True, help=DATA_DIR_HELP)
@click.option("--port", type=int, default=5000, show_default=True, help="mlflow server port.")
@click.option("--pg-port", type=int, default=5432, show_default=True, help="PostgreSQL port.")
def start_command(data_dir, port, pg_port):
    """Start PostgreSQL (initdb on first use) and mlflow server; print the environment to use them."""
    from xstilts.stack.local import start

    _print_env(start(data_dir, port=port, pg_port=pg_port))


@server_group.command("stop")
@click.option("--data-dir", default="xstilts-server", show_default=True, help=DATA_DIR_HELP)
def stop_command(data_dir):
    """Stop the mlflow server and PostgreSQL started with this data directory (the data stays)."""
    from xstilts.stack.local import stop

    click.echo("stopped" if stop(data_dir) else f"nothing running from {data_dir}")


@server_group.command("status")
@click.option("--data-dir", default="xstilts-server", show_default=True, help=DATA_DIR_HELP)
def status_command(data_dir):
    """Print the environment of the running stack (exit 1 when none answers)."""
    from xstilts.stack.local import status

    stack = status(data_dir)
    if stack is None:
        click.echo(f"no stack answering from {data_dir}", err=True)
        raise SystemExit(1)
    _print_env(stack)
