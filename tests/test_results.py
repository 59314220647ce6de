"""Every committed results file carries the one run record, and the index names every folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlcourse.labs import LABS
from nlcourse.provenance import RUN_RECORD_FIELDS, missing_fields, results_home

HOME = Path(__file__).resolve().parents[1] / "results"
FILES = sorted(p for p in HOME.rglob("*.json") if "smoke" not in p.relative_to(HOME).parts)


def test_the_results_home_is_found():
    assert results_home() == HOME and len(FILES) >= 70


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(HOME)))
def test_every_file_carries_the_run_record(path):
    record = json.loads(path.read_text())
    assert missing_fields(record) == [], f"{path.relative_to(HOME)} lacks {missing_fields(record)}"
    lab = path.relative_to(HOME).parts[0]
    assert record["lab"] == lab
    assert record["command"] and record["commit"] and record["date"] and record["device"]
    if lab != "bench":   # a training run: every field applies
        assert record["model"] in LABS[lab].models and path.stem == f"{record['model']}_seed{record['seed']}"
        assert None not in (record[k] for k in RUN_RECORD_FIELDS), path
        assert record["n_train"] > 0 and record["n_test"] > 0 and record["world_size"] >= 1
    text = path.read_text()
    for machine_path in ("/work/", "/tmp/", "/root/", "/home/"):
        assert machine_path not in text, f"{path.relative_to(HOME)} names {machine_path}"


def test_the_index_names_every_folder():
    index = (HOME / "README.md").read_text()
    folders = {p.parent.relative_to(HOME).as_posix() for p in FILES}
    for folder in folders:
        assert f"`{folder}/`" in index, f"results/README.md does not describe {folder}/"
