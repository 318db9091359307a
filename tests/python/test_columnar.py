"""Data where Hugging Face users keep it: Parquet files written by pyarrow
and folders written by `datasets`' save_to_disk (both pinned in the test
venv, the files made here) load with the right rows, columns, splits and
class names, and train; bad files are refused with the file named."""

import hashlib
import json
import re
import shutil
import subprocess

from tunebook_testing import REPO, TUNEBOOK, reference, scratch

pa = reference("pyarrow")
pq = reference("pyarrow.parquet")
datasets = reference("datasets")

TINY_BERT = REPO / "tests" / "fixtures" / "tiny-bert"
TINY_LLAMA = REPO / "tests" / "fixtures" / "decoders" / "tiny-llama"

# Every row of a dataset, one JSON object a line, after a marker.
DUMP = """
fn dump(name, d) {
    print(`== ${name} ${d}`);
    for r in d.head(1000) { print(r.to_json()); }
}
"""


def run(work, script, ok=True):
    (work / "t.rhai").write_text(DUMP + script)
    done = subprocess.run([TUNEBOOK, "run", "t.rhai", "--device", "cpu"], cwd=work, capture_output=True, text=True, timeout=600)
    if ok:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0, done.stdout
    return done


def dumped(stdout):
    """The datasets a script dumped: name -> (its display line, its rows)."""
    out, name = {}, None
    for line in stdout.splitlines():
        if line.startswith("== "):
            name, shown = line[3:].split(" ", 1)
            out[name] = (shown, [])
        elif name is not None and line.startswith("{"):
            out[name][1].append(json.loads(line))
    return out


def reviews(n, offset=0):
    texts = [f"{'good great fine' if i % 3 else 'bad awful poor'} film number {i + offset}" for i in range(n)]
    return texts, [1 if i % 3 else 0 for i in range(n)]


def test_a_parquet_file_with_integer_labels_loads_in_numeric_class_order_and_trains():
    work = scratch("tunebook-parquet-")
    shutil.copytree(TINY_BERT, work / "tiny")
    texts, labels = reviews(48)
    # Integer classes without names, one of them above 9: 2 sorts before 10.
    labels = [[2, 10, 10][i % 3] for i in range(48)]
    texts[5] = None
    labels[7] = None
    pq.write_table(pa.table({"id": list(range(48)), "text": texts, "label": pa.array(labels, pa.int64())}), work / "reviews.parquet")
    done = run(work, """
let d = load_dataset("reviews.parquet");
dump("d", d);
let m = load_model("tiny", #{ labels: ["2", "10"] });
let parts = d.split(#{ val: 0.25, seed: 1 });
let run = fit(m, parts.train.tokenize(m, #{ max_len: 12 }).loader(#{ batch: 8 }), parts.val.tokenize(m, #{ max_len: 12 }).loader(#{ batch: 8 }), #{ epochs: 1, lr: 1e-3 });
print(`steps ${run.steps}`);
""")
    shown, rows = dumped(done.stdout)["d"]
    # The row with no label is dropped and said; the null text is kept as empty and said.
    assert shown == "Dataset reviews.parquet (47 rows; 2: 16, 10: 31)", shown
    assert "dropped 1 rows without a label (lines 8)" in done.stderr
    assert "1 rows have no text (null), read as empty" in done.stderr
    expected = [(t or "", str(l)) for t, l in zip(texts, labels) if l is not None]
    assert [(r["text"], r["label"]) for r in rows] == expected
    assert "steps 5" in done.stdout


def test_hub_shards_load_as_splits_and_a_glob_as_one_table():
    work = scratch("tunebook-shards-")
    shutil.copytree(TINY_BERT, work / "tiny")
    (work / "data").mkdir()
    train_a, train_b, test = reviews(10), reviews(7, 10), reviews(5, 100)
    schema = pa.schema([("sentence", pa.string()), ("label", pa.string())])
    for name, (t, l) in [("train-00000-of-00002", train_a), ("train-00001-of-00002", train_b), ("test-00000-of-00001", test)]:
        pq.write_table(pa.table({"sentence": t, "label": ["pos" if x else "neg" for x in l]}, schema=schema), work / "data" / f"{name}.parquet")
    done = run(work, """
let parts = load_dataset(".");
print(`splits ${parts.keys()}`);
dump("train", parts.train);
dump("test", parts.test);
dump("glob", load_dataset("data/train-*.parquet"));
dump("picked", load_dataset(".", #{ split: "test" }));
let m = load_model("tiny", #{ labels: ["neg", "pos"] });
let run = fit(m, parts.train.tokenize(m, #{ max_len: 12 }).loader(#{ batch: 4 }), parts.test.tokenize(m, #{ max_len: 12 }).loader(#{ batch: 5 }), #{ epochs: 1, lr: 1e-3 });
print(`steps ${run.steps}`);
""")
    assert 'splits ["test", "train"]' in done.stdout
    got = dumped(done.stdout)
    # The text column is found by Hugging Face's usual name, `sentence`.
    assert [r["text"] for r in got["train"][1]] == train_a[0] + train_b[0]
    assert [r["text"] for r in got["glob"][1]] == train_a[0] + train_b[0]
    assert [r["text"] for r in got["test"][1]] == test[0]
    assert got["picked"][1] == got["test"][1]
    negatives = (train_a[1] + train_b[1]).count(0)
    assert got["train"][0].endswith(f"(17 rows; neg: {negatives}, pos: {17 - negatives})"), got["train"][0]
    assert "steps 5" in done.stdout


def test_a_dataset_dict_keeps_its_splits_and_class_label_order_and_a_withheld_test_split_is_unlabelled():
    work = scratch("tunebook-dict-")
    shutil.copytree(TINY_BERT, work / "tiny")
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["positive", "negative"])})
    texts, labels = reviews(40)
    labels = [0 if x else 1 for x in labels]
    whole = datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)
    withheld = datasets.Dataset.from_dict({"text": texts[:6], "label": [-1] * 6}, features=features)
    datasets.DatasetDict({"train": whole.select(range(30)), "validation": whole.select(range(30, 40)), "test": withheld}).save_to_disk(str(work / "reviews"))
    done = run(work, """
let parts = load_dataset("reviews");
print(`splits ${parts.keys()}`);
dump("train", parts.train);
dump("validation", parts.validation);
dump("test", parts.test);
let m = load_model("tiny", #{ labels: ["positive", "negative"] });
let run = fit(m, parts.train.tokenize(m, #{ max_len: 12 }).loader(#{ batch: 10 }), parts.validation.tokenize(m, #{ max_len: 12 }).loader(#{ batch: 10 }), #{ epochs: 2, lr: 1e-3 });
print(`steps ${run.steps} evaluated ${run.history.len()}`);
let p = predict(m, parts.test);
print(`predicted ${p.len()}`);
let streamed = load_dataset("reviews", #{ stream: true });
print(`== streamed-train ${streamed.train}`);
for r in streamed.train.head(100) { print(r.to_json()); }
print(`== streamed-test ${streamed.test}`);
let m = load_model("tiny", #{ labels: ["positive", "negative"] });
let run = fit(m, streamed.train.tokenize(m, #{ max_len: 12 }).loader(#{ batch: 10, shuffle: true }), streamed.validation.tokenize(m, #{ max_len: 12 }).loader(#{ batch: 10 }), #{ epochs: 1, lr: 1e-3 });
print(`streamed steps ${run.steps}`);
""")
    got = dumped(done.stdout)
    # ClassLabel's order, not sorted: positive is class 0.
    assert got["train"][0] == "Dataset reviews/train (30 rows; positive: 20, negative: 10)", got["train"][0]
    assert [r["label"] for r in got["train"][1]] == [["positive", "negative"][l] for l in labels[:30]]
    assert [r["text"] for r in got["validation"][1]] == texts[30:40]
    assert [r["label"] for r in got["test"][1]] == ["-"] * 6
    assert "every row's 'label' is missing (-1 or null" in done.stderr
    assert "steps 6 evaluated 2" in done.stdout
    assert "predicted 6" in done.stdout
    # Streamed from the Arrow files: the same rows, class order and withheld split.
    assert got["streamed-train"][0] == "StreamedDataset reviews/train (30 rows read as needed from 1 Arrow file; positive: 20, negative: 10)", got["streamed-train"][0]
    assert got["streamed-train"][1] == got["train"][1]
    assert got["streamed-test"][0].endswith("(6 rows read as needed from 1 Arrow file; unlabelled, for predict)"), got["streamed-test"][0]
    assert "streamed steps 3" in done.stdout


def test_token_tags_in_a_sequence_of_class_labels_keep_their_order_and_train():
    work = scratch("tunebook-tokens-")
    shutil.copytree(TINY_BERT, work / "tiny")
    tags = ["O", "B-PER", "I-PER", "B-LOC"]
    sentences = [(["Anna", "Lee", "visited", "Rome"], [1, 2, 0, 3]), (["Rome", "is", "old"], [3, 0, 0]), (["Bo", "ran"], [1, 0])] * 6
    features = datasets.Features({"id": datasets.Value("string"), "tokens": datasets.Sequence(datasets.Value("string")), "ner_tags": datasets.Sequence(datasets.ClassLabel(names=tags))})
    data = datasets.Dataset.from_dict({"id": [str(i) for i in range(len(sentences))], "tokens": [w for w, _ in sentences], "ner_tags": [t for _, t in sentences]}, features=features)
    data.save_to_disk(str(work / "ner"))
    data.to_parquet(str(work / "ner.parquet"))
    done = run(work, """
let d = load_dataset("ner", #{ task: "token_classify" });
dump("arrow", d);
dump("parquet", load_dataset("ner.parquet", #{ task: "token_classify" }));
let m = load_model("tiny", #{ task: "token_classify", labels: ["O", "B-PER", "I-PER", "B-LOC"] });
let run = fit(m, d.tokenize(m, #{ max_len: 12 }).loader(#{ batch: 6 }), #{ epochs: 1, lr: 1e-3 });
print(`steps ${run.steps}`);
""")
    got = dumped(done.stdout)
    want = [{"text": " ".join(w), "label": " ".join(tags[t] for t in ts)} for w, ts in sentences]
    assert got["arrow"][1] == want
    assert got["parquet"][1] == want
    # Tag ids follow the ClassLabel (O first), not the sorted names.
    assert re.search(r"\(18 rows; O: \d+, B-PER: \d+, I-PER: \d+, B-LOC: \d+\)$", got["arrow"][0]), got["arrow"][0]
    assert "steps 3" in done.stdout


def test_chat_messages_load_from_arrow_and_parquet_as_from_json_lines():
    work = scratch("tunebook-chat-")
    conversations = [
        [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": f"{2 * i}."}] for i in range(6)
    ]
    conversations[2] = [{"role": "system", "content": "Be brief."}] + conversations[2]
    with open(work / "chat.jsonl", "w") as f:
        for c in conversations:
            f.write(json.dumps({"messages": c}) + "\n")
    data = datasets.Dataset.from_dict({"messages": conversations})
    data.save_to_disk(str(work / "chat"))
    data.to_parquet(str(work / "chat.parquet"))
    done = run(work, f"""
let lm = load_model("{TINY_LLAMA}");
for name in ["chat.jsonl", "chat", "chat.parquet"] {{
    let d = load_dataset(name);
    print(`== ${{name}} ${{d}}`);
    let t = d.tokenize(lm, #{{ max_len: 64 }});
    for i in 0..t.len() {{ print(t.row(i).to_json()); }}
}}
let t = load_dataset("chat.parquet").tokenize(lm, #{{ max_len: 64 }});
let run = fit(lm, t.loader(#{{ batch: 3 }}), #{{ epochs: 1, lr: 1e-4 }});
print(`steps ${{run.steps}}`);
""")
    got = dumped(done.stdout)
    assert got["chat.jsonl"][0].startswith("ChatDataset") and "6 examples" in got["chat.jsonl"][0]
    assert len(got["chat.jsonl"][1]) == 6
    assert got["chat"][1] == got["chat.jsonl"][1]
    assert got["chat.parquet"][1] == got["chat.jsonl"][1]
    assert "steps 2" in done.stdout


def tree_digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bad_files_are_refused_with_the_file_named_and_nothing_touched():
    work = scratch("tunebook-bad-columnar-")
    texts, labels = reviews(200)
    pq.write_table(pa.table({"text": texts, "label": labels}), work / "whole.parquet")
    whole = (work / "whole.parquet").read_bytes()
    (work / "cut.parquet").write_bytes(whole[: len(whole) // 2])
    pq.write_table(pa.table({"review_id": list(range(5)), "stars": [1.0, 2.0, 3.0, 4.0, 5.0]}), work / "numbers.parquet")
    pq.write_table(pa.table({"text": list(range(5)), "label": [0, 1, 0, 1, 0]}), work / "int_text.parquet")
    datasets.Dataset.from_dict({"text": texts[:4], "label": labels[:4]}).save_to_disk(str(work / "noinfo"))
    (work / "noinfo" / "dataset_info.json").unlink()
    before = tree_digest(work)

    cases = {
        "cut.parquet": ["cut.parquet is not a readable Parquet file", "truncated"],
        "numbers.parquet": ["numbers.parquet: no column 'text'; columns: review_id (int64), stars (float64)"],
        "int_text.parquet": ["int_text.parquet: column 'text' holds int64 values, not text", "text: \"...\""],
        "noinfo": ["noinfo/dataset_info.json is missing", "save_to_disk"],
    }
    for name, wanted in cases.items():
        done = run(work, f'let d = load_dataset("{name}");\nprint(d);\n', ok=False)
        for w in wanted:
            assert w in done.stderr, (name, done.stderr)
        assert "panicked" not in done.stderr
    done = run(work, 'let d = load_dataset("whole.parquet", #{ label: "stars" });\n', ok=False)
    assert "no column 'stars'; columns: text (string), label (int64)" in done.stderr
    done = run(work, 'let d = load_dataset("noinfo", #{ split: "train" });\n', ok=False)
    assert "dataset_info.json is missing" in done.stderr
    # Only the script was added.
    after = tree_digest(work)
    after.pop("t.rhai")
    assert after == before


def test_a_streamed_parquet_file_trains_exactly_as_the_same_file_in_memory():
    work = scratch("tunebook-stream-")
    shutil.copytree(TINY_BERT, work / "tiny")
    texts, labels = reviews(3000)
    labels = ["fresh" if x else "rotten" for x in labels]
    labels[10] = None
    # Small row groups, so that reading crosses row groups and chunks.
    pq.write_table(pa.table({"text": texts, "label": labels}), work / "big.parquet", row_group_size=700)
    # And as datasets writes it: two Arrow files of 1,000-row record batches.
    datasets.Dataset.from_dict({"text": texts, "label": labels}).save_to_disk(str(work / "big_arrow"), num_shards=2)
    done = run(work, """
let streamed = load_dataset("big.parquet", #{ stream: true });
let loaded = load_dataset("big.parquet");
print(`${streamed}`);
let a = streamed.split(#{ val: 0.2, seed: 3, stratify: true });
let b = loaded.split(#{ val: 0.2, seed: 3, stratify: true });
for r in a.val.head(1000) { print(`head ${r.to_json()}`); }
for r in b.val.head(1000) { print(`memory ${r.to_json()}`); }
let arrow = load_dataset("big_arrow", #{ stream: true });
print(`${arrow}`);
let runs = [];
for data in [streamed, loaded, arrow] {
    set_seed(7);
    let m = load_model("tiny", #{ labels: ["rotten", "fresh"] });
    let run = fit(m, data.take(2400).tokenize(m, #{ max_len: 12 }).loader(#{ batch: 64 }), a.val.tokenize(m, #{ max_len: 12 }).loader(#{ batch: 256 }), #{ epochs: 1, lr: 1e-3 });
    runs.push(run);
}
print(`losses ${runs[0].history[0].train_loss} ${runs[1].history[0].train_loss} ${runs[2].history[0].train_loss}`);
print(`val ${runs[0].val_accuracy} ${runs[1].val_accuracy} ${runs[2].val_accuracy}`);
let m = load_model("tiny", #{ labels: ["rotten", "fresh"] });
let shuffled = fit(m, a.train.tokenize(m, #{ max_len: 12 }).loader(#{ batch: 64, shuffle: true }), #{ epochs: 2, lr: 1e-3 });
print(`shuffled steps ${shuffled.steps}`);
""")
    assert "StreamedDataset big.parquet (2,999 rows read as needed from 1 Parquet file; fresh: 1999, rotten: 1000)" in done.stdout, done.stdout
    assert "dropped 1 rows without a label (lines 11)" in done.stderr
    # The same rows in each part (the split looks only at the labels); a streamed part keeps file order.
    streamed_val = [json.loads(l[5:]) for l in done.stdout.splitlines() if l.startswith("head ")]
    memory_val = [json.loads(l[7:]) for l in done.stdout.splitlines() if l.startswith("memory ")]
    assert len(streamed_val) == 600
    assert sorted(map(json.dumps, streamed_val)) == sorted(map(json.dumps, memory_val))
    # The same rows in the same order train to the same loss, to the bit.
    assert "StreamedDataset big_arrow (2,999 rows read as needed from 2 Arrow files; fresh: 1999, rotten: 1000)" in done.stdout, done.stdout
    losses = re.search(r"losses (\S+) (\S+) (\S+)", done.stdout).groups()
    assert losses[0] == losses[1] == losses[2], losses
    val = re.search(r"val (\S+) (\S+) (\S+)", done.stdout).groups()
    assert val[0] == val[1] == val[2], val
    # 2,399 training rows in batches of 64: 38 a epoch.
    assert "shuffled steps 76" in done.stdout
