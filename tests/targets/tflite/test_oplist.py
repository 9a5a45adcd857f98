"""The READMEs' TFLite op lists are generated from rules.RULES and must stay in sync with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from targets.tflite.oplist import READMES, grouped_ops, render
from targets.tflite.rules import RULES

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("readme", READMES, ids=str)
def test_readme_op_list_is_the_rules_table(readme):
    text = (ROOT / readme).read_text()
    assert render() in text, f"{readme}: run python -m targets.tflite.oplist --write"


def test_op_list_names_every_rule_once():
    listed = [op for ops in grouped_ops().values() for op in ops]
    assert sorted(listed) == sorted(op for op in RULES if op != "Requantize")
