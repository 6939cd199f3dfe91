"""``xstilts tasks ...`` commands."""
from __future__ import annotations

import json

import click

from xstilts.tasks import list_tasks


@click.group("tasks")
def tasks_group() -> None:
    """Registered tasks (XTREME targets and intermediate tasks)."""


@tasks_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_command(as_json: bool) -> None:
    """List every task with its kind, family, metric and languages."""
    tasks = list_tasks()
    if as_json:
        click.echo(json.dumps([t.info() for t in tasks], indent=2, ensure_ascii=False))
        return
    header = ("task", "kind", "family", "metric", "#lang", "splits", "languages")
    rows = [(t.name, t.kind, t.family.name, t.metric, str(len(t.languages)), ",".join(t.splits), " ".join(t.languages))
            for t in tasks]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for r in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
