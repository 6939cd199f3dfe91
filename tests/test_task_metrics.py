"""Every task names a metric that the metric registry implements."""
from xstilts.evaluation.metrics.registry import get_metric
from xstilts.evaluation.metrics.classification import accuracy_and_f1
from xstilts.tasks import list_tasks


def test_every_task_metric_is_registered():
    expected = {"xnli": "accuracy", "pawsx": "accuracy", "panx": "seqeval_f1", "udpos": "xtreme_pos_f1",
                "xquad": "squad_em_f1", "tydiqa": "squad_em_f1", "mlqa": "mlqa_em_f1",
                "tatoeba": "tatoeba_accuracy", "bucc2018": "bucc_f1", "qqp": "acc_and_f1"}
    for task in list_tasks():
        assert get_metric(task.metric).name == task.metric
        if task.name in expected:
            assert task.metric == expected[task.name], task.name


def test_qqp_accuracy_and_f1_by_hand():
    # gold 1,1,0,0,1 / pred 1,0,0,1,1: tp=2 fp=1 fn=1 -> F1 = 4/6; accuracy 3/5
    out = accuracy_and_f1(["1", "1", "0", "0", "1"], ["1", "0", "0", "1", "1"])
    assert abs(out["f1"] - 200 / 3) < 1e-9 and out["accuracy"] == 60.0
    assert abs(out["acc_and_f1"] - (60 + 200 / 3) / 2) < 1e-9
