"""Every head Tunebook saves runs the same in Hugging Face `transformers`.

One Tunebook script trains each architecture (BERT as MiniLM, RoBERTa and
DistilBERT as tiny fixtures) with each pooling and task for a few steps,
saves it, and prints its predictions; each saved folder is then loaded the
way a transformers user would and its outputs are compared. Mean-pooled
heads have no transformers class: they load with `trust_remote_code=True`
(the folder carries the class) and are refused without it. The reference
libraries come from the venv `scripts/test` installs, so this runs in CI."""

import json
import pathlib
import shutil
import subprocess

import pytest

from tunebook_testing import REPO, TUNEBOOK, reference, scratch

torch = reference("torch")
transformers = reference("transformers")

# Measured: at most 1.2e-7 between Tunebook and transformers on these models.
TOLERANCE = 1e-6
TEXTS = ["the film is good", "a dull long plot", "great story and fun actor", "i hate the bad film"]
ROWS = [
    ("the film is good", "pos", "0.9", "fun|story"),
    ("a bad plot", "neg", "0.1", "plot"),
    ("great story", "pos", "0.8", "story"),
    ("dull long film", "neg", "0.2", "plot|long"),
    ("fun actor and great film", "pos", "0.7", "fun"),
    ("i hate the story", "neg", "0.3", "story|plot"),
]
TAGGED = [
    [("the", "O"), ("actor", "PER"), ("is", "O"), ("good", "O")],
    [("a", "O"), ("story", "WORK"), ("of", "O"), ("love", "O")],
    [("the", "O"), ("plot", "WORK"), ("and", "O"), ("the", "O"), ("actor", "PER")],
]
ARCHS = {
    "bert": "minilm",
    "roberta": str(REPO / "tests" / "fixtures" / "tiny-roberta"),
    "distilbert": str(REPO / "tests" / "fixtures" / "tiny-distilbert"),
}
HEADS = {
    "classify": '#{ task: "classify", labels: ["neg", "pos"], pooling: "POOLING" }',
    "multi_label": '#{ task: "multi_label", labels: 4, pooling: "POOLING" }',
    "regression": '#{ task: "regression", labels: ["score"], pooling: "POOLING" }',
}
DATA = {"classify": "label", "multi_label": "tags", "regression": "score"}
CASES = [(a, p, t) for a in ARCHS for p in ["pooler", "mean"] for t in HEADS] + [(a, "-", "token_classify") for a in ARCHS]
# LoRA merged into the saved weights, and a model with two heads whose
# active one is exported (the parked one rides along under heads.<name>.).
EXTRAS = {
    ("bert", "pooler", "classify+lora"): 'model.add_lora(#{ r: 4, alpha: 8, dropout: 0.0 });',
    ("bert", "mean", "classify+lora"): 'model.add_lora(#{ r: 4, alpha: 8, dropout: 0.0 });',
    ("bert", "mean", "classify+parked"): 'model.add_head("tags", #{ labels: 4, pooling: "pooler", task: "multi_label" });',
    ("distilbert", "pooler", "classify+parked"): 'model.add_head("tags", #{ labels: 4, pooling: "mean", task: "multi_label" });',
}
CASES += list(EXTRAS)

SCRIPT = r"""
fn report(name, preds) {
    for i in 0..preds.len() {
        let p = preds[i];
        if "values" in p { for k in p.values.keys() { print(`OUT	${name}	${i}	${k}	${p.values[k]}`); } }
        else if "words" in p { for j in 0..p.words.len() { print(`OUT	${name}	${i}	${j}	${p.tags[j]}	${p.scores[j]}`); } }
        else { for k in p.scores.keys() { print(`OUT	${name}	${i}	${k}	${p.scores[k]}`); } }
    }
}
"""


def case_name(arch, pooling, task):
    return f"{arch}-{pooling}-{task}"


def script_for(work):
    texts = "[" + ", ".join(f'"{t}"' for t in TEXTS) + "]"
    lines = [SCRIPT]
    for arch, pooling, task in CASES:
        name = case_name(arch, pooling, task)
        out = work / name
        if task == "token_classify":
            load = f'load_model("{ARCHS[arch]}", #{{ task: "token_classify", labels: 3 }})'
            data = f'load_dataset("{work / "tags.conll"}", #{{ task: "token_classify" }})'
            words = '["the actor and the plot"]'
        else:
            base_task = task.split("+")[0]
            load = f'load_model("{ARCHS[arch]}", {HEADS[base_task].replace("POOLING", pooling)})'
            data = f'load_dataset("{work / "rows.csv"}", #{{ label: "{DATA[base_task]}", task: "{base_task}" }})'
            words = texts
        extra = EXTRAS.get((arch, pooling, task), "")
        lines.append(f"""
            {{
                let model = {load};
                {extra}
                fit(model, {data}.tokenize(model, #{{ max_len: 16 }}).loader(#{{ batch: 3 }}), #{{ epochs: 2, lr: 1e-3, warmup: 0.0 }});
                model.save("{out}");
                report("{name}", predict(model, {words}));
                report("{name}/reloaded", predict(load_model("{out}"), {words}));
            }}""")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def saved():
    """Trains and saves every case once; returns (folder, outputs by case)."""
    work = scratch("tunebook-matrix-")
    with open(work / "rows.csv", "w") as f:
        f.write("text,label,score,tags\n" + "".join(f'"{t}",{c},{s},{g}\n' for t, c, s, g in ROWS))
    (work / "tags.conll").write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in TAGGED) + "\n")
    (work / "matrix.rhai").write_text(script_for(work))
    run = subprocess.run([TUNEBOOK, "run", str(work / "matrix.rhai"), "--device", "cpu"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    outputs = {}
    for line in run.stdout.splitlines():
        if line.startswith("OUT\t"):
            _, name, i, *rest = line.split("\t")
            outputs.setdefault(name, []).append((int(i), *rest))
    yield work, outputs
    shutil.rmtree(work, ignore_errors=True)


def tokenizer_for(folder, arch):
    if arch == "bert":
        return transformers.AutoTokenizer.from_pretrained(folder)
    # The tiny fixtures carry only a WordPiece vocab.txt.
    return transformers.BertTokenizer(vocab=str(folder / "vocab.txt"))


def load_sequence_classifier(folder, pooling):
    auto = transformers.AutoModelForSequenceClassification
    if pooling == "mean":
        # transformers has no mean-pooled head: without the folder's own class it refuses.
        with pytest.raises(ValueError, match="trust_remote_code"):
            auto.from_pretrained(folder)
        return auto.from_pretrained(folder, trust_remote_code=True, attn_implementation="eager").eval()
    return auto.from_pretrained(folder, attn_implementation="eager").eval()


@pytest.mark.parametrize("arch,pooling,task", CASES, ids=[case_name(*c) for c in CASES])
def test_a_saved_head_gives_the_same_outputs_in_transformers(saved, arch, pooling, task):
    work, outputs = saved
    name = case_name(arch, pooling, task)
    folder = work / name
    ours = outputs[name]
    # Tunebook reads its own folder back to the same predictions (to the
    # bit, except that merging LoRA into the weights rounds: 4e-8 measured).
    reloaded = outputs[f"{name}/reloaded"]
    if "lora" in task:
        assert [r[:-1] for r in reloaded] == [o[:-1] for o in ours]
        assert max(abs(float(r[-1]) - float(o[-1])) for r, o in zip(reloaded, ours)) < TOLERANCE
    else:
        assert reloaded == ours
    tok = tokenizer_for(folder, arch)
    config = json.loads((folder / "config.json").read_text())

    if task == "token_classify":
        model = transformers.AutoModelForTokenClassification.from_pretrained(folder, attn_implementation="eager").eval()
        words = "the actor and the plot".split()
        enc = tok(words, is_split_into_words=True, return_tensors="pt")
        enc.pop("token_type_ids", None)
        with torch.no_grad():
            probs = model(**enc).logits.softmax(-1)[0]
        seen = set()
        firsts = [i for i, w in enumerate(enc.word_ids()) if w is not None and not (w in seen or seen.add(w))]
        assert len(ours) == len(words)
        for (_, j, tag, score), t in zip(sorted(ours, key=lambda o: int(o[1])), firsts):
            assert model.config.id2label[int(probs[t].argmax())] == tag, (j, tag, probs[t])
            assert abs(float(probs[t].max()) - float(score)) < TOLERANCE
        return

    model = load_sequence_classifier(folder, pooling)
    expected_class = {"bert": "Bert", "roberta": "Roberta", "distilbert": "DistilBert"}[arch]
    assert type(model).__name__ == (f"TunebookMeanPooled{expected_class}ForSequenceClassification" if pooling == "mean" else f"{expected_class}ForSequenceClassification")
    assert config["architectures"] == [type(model).__name__]
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    enc.pop("token_type_ids", None)
    with torch.no_grad():
        logits = model(**enc).logits
    theirs = {"classify": logits.softmax(-1), "multi_label": logits.sigmoid(), "regression": logits}[task.split("+")[0]]
    worst = 0.0
    for i, key, value in ours:
        worst = max(worst, abs(float(theirs[i, model.config.label2id[key]]) - float(value)))
    assert len(ours) == len(TEXTS) * model.config.num_labels
    print(f"{name}: {type(model).__name__}, max |delta| {worst:.1e}")
    assert worst < TOLERANCE, (name, worst)
