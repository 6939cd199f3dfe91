"""The encoder check's random-init control: a model of the default's shape with random weights scores
near chance.

In a file of its own, apart from ``test_encoder_check.py``: under ``pytest -n 2 --dist loadfile`` a file runs
on one worker, and that file's full Tatoeba check already takes that worker for about 8 minutes of fp32
(a 2-core Zen 4 EPYC with torch held to AVX2, one thread); here the control runs on the other worker
beside it (116 s there) instead of after it.
"""
import json

import pytest
from click.testing import CliRunner

from xstilts.cli import main


@pytest.mark.slow
def test_full_check_random_init_is_below_10_percent(default_encoder_dir):
    """Acceptance control: the same shape with random weights is near chance (< 10 %).

    200 pairs per language: fewer candidates make chance hits likelier, so this is
    the harder case for the threshold, and it runs 5x faster than the full sets.
    """
    result = CliRunner().invoke(main, ["model", "check", "--json", "--random-init", "--max-pairs", "200"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["accuracy"]) == 36
    assert payload["mean"] < 10.0, payload
