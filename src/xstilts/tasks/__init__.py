"""Task registry; importing this package registers all 18 tasks (one module each)."""
from xstilts.tasks import (anli, bucc, mlqa, mnli, multiple_choice, panx, pawsx, qqp, squad,  # noqa: F401
                           sst2, tatoeba, tydiqa, udpos, xnli, xquad)
from xstilts.tasks.registry import HubRef, Task, get_task, list_tasks, register_task, task_names

__all__ = ["HubRef", "Task", "get_task", "list_tasks", "register_task", "task_names"]
