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


def test_widget_state_is_saved_in_the_notebook_and_nbconvert_embeds_it():
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('let layers = slider(#{ min: 1, max: 6, value: 2, description: "top layers" });\nlayers'),
        nbformat.v4.new_code_cell("layers.value = 4;\nfn acc(v) { `${v.n} layers` }\ninteract(acc, #{ n: layers });"),
    ]
    NotebookClient(nb, kernel_name="tunebook", timeout=600).execute()
    saved = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    assert (saved["version_major"], saved["version_minor"]) == (2, 0)
    state = saved["state"]
    sliders = [m for m in state.values() if m["model_name"] == "IntSliderModel"]
    assert len(sliders) == 1 and sliders[0]["state"]["value"] == 4 and sliders[0]["model_module"] == "@jupyter-widgets/controls", sliders
    [output] = [m for m in state.values() if m["model_name"] == "OutputModel"]
    assert output["model_module"] == "@jupyter-widgets/output"
    assert [o["data"]["text/plain"] for o in output["state"]["outputs"]] == ['"4 layers"'], output["state"]["outputs"]
    # Every model a widget refers to (its layout and style, a box's children) is saved too.
    for model in state.values():
        for ref in [model["state"].get("layout"), model["state"].get("style")] + model["state"].get("children", []):
            assert ref is None or ref.removeprefix("IPY_MODEL_") in state, (model["model_name"], ref)
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert '<script type="application/vnd.jupyter.widget-state+json">' in html
    view = nb.cells[0].outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert '<script type="application/vnd.jupyter.widget-view+json">' in html and view in html
