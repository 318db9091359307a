"""The fine-tuning course (examples/notebooks/NN_*.ipynb), executed headlessly
with nbclient on a reduced data size, set through the ROWS parameter at the
top of each notebook. No cell may fail, and each lesson's headline result
must clear the floor stated here."""

import re
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from tunebook_testing import REPO as ROOT

NOTEBOOKS = ROOT / "examples" / "notebooks"

# Lesson: (ROWS for the test, {result: floor}). The majority class of the
# Rotten Tomatoes reviews is 0.58, of the BBC topics 0.23, of the digits 0.1.
LESSONS = {
    "01_full_finetuning": (320, {"accuracy": 0.62}),
    "02_learning_rates": (160, {"accuracy": 0.62}),
    "03_partial_finetuning": (160, {"accuracy": 0.60}),
    "04_overfitting": (96, {"accuracy": 0.58}),
    "05_augmentation": (160, {"accuracy": 0.58}),
    "06_lora_and_adapters": (160, {"accuracy": 0.58}),
    "07_multi_task": (160, {"accuracy": 0.5}),
    "08_images": (1200, {"accuracy": 0.65, "transfer_accuracy": 0.5}),
    "09_interrupt_and_resume": (96, {"accuracy": 0.5}),
}


def test_every_lesson_is_listed_and_every_notebook_matches_its_script():
    found = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb") if p.stem != "01_quickstart")
    assert found == sorted(LESSONS), "a lesson without a floor here, or a floor without a lesson"
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "course"), "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def set_rows(nb, rows):
    for cell in nb.cells:
        if cell.cell_type == "code" and re.search(r"^const ROWS = \d+;", cell.source, re.M):
            cell.source = re.sub(r"^const ROWS = \d+;", f"const ROWS = {rows};", cell.source, flags=re.M)
            return
    raise AssertionError("the notebook has no `const ROWS = N;` parameter")


@pytest.mark.parametrize("lesson", sorted(LESSONS))
def test_lesson_runs_and_reaches_its_floor(lesson, tmp_path):
    rows, floors = LESSONS[lesson]
    nb = nbformat.read(NOTEBOOKS / f"{lesson}.ipynb", as_version=4)
    set_rows(nb, rows)
    # Run in a scratch folder, so that what a lesson saves lands there.
    NotebookClient(nb, kernel_name="tunebook", timeout=900, resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = ""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{lesson}: {out.get('ename')}: {out.get('evalue')}"
            if out["output_type"] == "stream" and out["name"] == "stdout":
                text += out["text"]
    results = {k: float(v) for k, v in re.findall(r"^result: (\w+) ([-0-9.e]+)$", text, re.M)}
    print(lesson, results)
    for name, floor in floors.items():
        assert name in results, f"{lesson} printed no result '{name}': {results}"
        assert results[name] > floor, f"{lesson}: {name} {results[name]:.3f} is not above {floor}"
    if lesson == "09_interrupt_and_resume":
        assert results["resume_difference"] < 1e-6, "a resumed run ends where an uninterrupted one does"
    charts = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "display_data" and "image/png" in o.get("data", {})]
    assert charts, f"{lesson} showed no chart"
