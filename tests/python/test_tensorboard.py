"""A run logged with fit(..., #{ log: "tensorboard" }) reads in
TensorBoard's own EventAccumulator with the tags, steps and values the run
recorded, and its settings and end in the HParams plugin's records; and
load_run reads the folder back."""

import json
import re
import shutil
import subprocess

import pytest

from tunebook_testing import REPO, TUNEBOOK, reference, scratch

event_accumulator = reference("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = reference("tensorboard.plugins.hparams.plugin_data_pb2")

SCRIPT = """
let m = load_model("tiny", #{ labels: ["neg", "pos"] });
let rows = [];
for i in 0..40 { rows.push(#{ text: if i % 2 == 0 { `good fine great ${i}` } else { `bad awful poor ${i}` }, label: if i % 2 == 0 { "pos" } else { "neg" } }); }
let d = dataset(rows).split(#{ val: 0.25, seed: 1 });
let train = d.train.tokenize(m, #{ max_len: 8 }).loader(#{ batch: 4, shuffle: true });
let val = d.val.tokenize(m, #{ max_len: 8 }).loader(#{ batch: 8 });
let run = fit(m, train, val, #{ epochs: 2, lr: 1e-3, warmup: 0.2, eval_every: 4, log_dir: "logs/first" });
run.save("run.jsonl");
let back = load_run("logs/first");
print(`back ${back.history.len()} ${back.steps} ${back.val_accuracy}`);
"""


def test_a_logged_run_reads_in_tensorboard_with_its_values_and_settings():
    work = scratch("tunebook-tensorboard-")
    shutil.copytree(REPO / "tests" / "fixtures" / "tiny-bert", work / "tiny")
    (work / "t.rhai").write_text(SCRIPT)
    done = subprocess.run([TUNEBOOK, "run", "t.rhai", "--device", "cpu"], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "TensorBoard logs in logs/first (to view: tensorboard --logdir logs)" in done.stderr

    lines = [json.loads(l) for l in (work / "run.jsonl").read_text().splitlines()]
    steps = [l for l in lines if l["kind"] == "step"]
    epochs = [l for l in lines if l["kind"] == "epoch"]
    summary = lines[0]

    acc = event_accumulator.EventAccumulator(str(work / "logs" / "first"), size_guidance={event_accumulator.SCALARS: 0}).Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ["train/loss", "train/learning_rate", "train/grad_norm", "train/epoch", "eval/loss", "eval/accuracy", "eval/f1", "epoch/train_loss", "run/train_seconds", "run/samples_per_second"]:
        assert tag in tags, f"{tag} missing from {sorted(tags)}"

    def series(tag):
        return [(e.step, e.value) for e in acc.Scalars(tag)]

    # Every step's loss and rate, at its step, as 32-bit floats.
    assert [s for s, _ in series("train/loss")] == [s["step"] for s in steps]
    for (_, loss), s in zip(series("train/loss"), steps):
        assert loss == pytest.approx(s["loss"], rel=1e-6)
    for (_, lr), s in zip(series("train/learning_rate"), steps):
        assert lr == pytest.approx(s["lr"], rel=1e-6)
    assert series("train/epoch")[-1][1] == pytest.approx(2.0)
    # Evaluations every 4 steps and at each epoch's end (30 rows, batch 4:
    # 8 steps an epoch), the epoch ends' values those of the run.
    assert [s for s, _ in series("eval/loss")] == [4, 8, 12, 16]
    epoch_ends = dict(series("eval/accuracy"))
    for e in epochs:
        assert epoch_ends[8 * e["epoch"]] == pytest.approx(e["val"]["accuracy"], rel=1e-6)
    assert series("epoch/train_loss")[-1][1] == pytest.approx(epochs[-1]["train_loss"], rel=1e-6)
    assert series("run/train_seconds")[-1][1] == pytest.approx(summary["train_seconds"], rel=1e-6)

    # The settings and the end, for the HParams table.
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["lr"].number_value == pytest.approx(1e-3)
    assert start.hparams["optimizer"].string_value == "adamw"
    assert start.hparams["batch_size"].number_value == 4
    assert start.hparams["epochs"].number_value == 2
    assert start.hparams["trainable_params"].number_value == summary["trainable_params"]
    end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"]).session_end_info
    assert end.status == 1  # STATUS_SUCCESS

    # load_run reads the folder back: every step and the final accuracy.
    back = re.search(r"^back (\d+) (\d+) ([0-9.]+)$", done.stdout, re.M)
    assert back, done.stdout
    assert (int(back.group(1)), int(back.group(2))) == (len(epochs), len(steps))
    assert float(back.group(3)) == pytest.approx(epochs[-1]["val"]["accuracy"], rel=1e-6)
