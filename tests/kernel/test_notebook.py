"""The quick-start notebook, executed headlessly with nbclient as a user's
`jupyter nbconvert --execute` would."""


import nbformat
from nbclient import NotebookClient

from tunebook_testing import REPO

NOTEBOOK = REPO / "examples" / "notebooks" / "01_quickstart.ipynb"


def outputs_of(cell):
    return [o for o in cell.get("outputs", [])]


def test_quickstart_notebook_runs_end_to_end():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name="tunebook", timeout=600).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    # The model shows its summary as a table.
    model_out = outputs_of(code[0])[0]
    assert model_out["output_type"] == "execute_result" and "<table>" in model_out["data"]["text/html"]
    assert "trainable" in outputs_of(code[1])[0]["text"]
    # Training left one display (the final progress and the curves) and its
    # record as text: one line per epoch, kept in the saved notebook.
    train_outs = outputs_of(code[4])
    displays = [o for o in train_outs if o["output_type"] == "display_data"]
    assert len(displays) == 1
    assert "done in" in displays[0]["data"]["text/plain"], displays[0]["data"]["text/plain"]
    record = "".join(o["text"] for o in train_outs if o["output_type"] == "stream" and o["name"] == "stdout")
    assert "epoch 1/2: train_loss" in record and "epoch 2/2: train_loss" in record and "val_accuracy" in record, record
    run = [o for o in train_outs if o["output_type"] == "execute_result"][0]["data"]["text/plain"]
    accuracy = float(run.split("val_accuracy ")[1].split()[0].rstrip(",;"))
    assert accuracy > 0.65, run
    # The next chart is not the training curves again: the confusion matrix, in both image formats.
    chart = outputs_of(code[5])[0]
    assert chart["output_type"] == "display_data" and {"image/svg+xml", "image/png"} <= set(chart["data"])
    assert "confusion" in chart["data"]["text/plain"].lower(), chart["data"]["text/plain"]
    preds = outputs_of(code[6])[0]["data"]["text/plain"]
    assert "label" in preds and "score" in preds
