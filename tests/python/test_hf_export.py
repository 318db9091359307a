"""A model fine-tuned and saved by Tunebook loads in Hugging Face
`transformers` and predicts the same. Runs wherever `transformers` is
installed (for example the venv scripts/make_parity_fixture.py makes);
skipped elsewhere."""

import os
import pathlib
import re
import subprocess

import pytest

from tunebook_testing import REPO, TUNEBOOK, reference, scratch

torch = reference("torch")
transformers = reference("transformers")

TEXTS = ["A warm and funny film.", "Dull, slow and far too long.", "It was fine, I suppose."]


def test_saved_model_gives_the_same_predictions_in_transformers():
    out = scratch("tunebook-export-") / "model"
    texts = ", ".join(f'"{t}"' for t in TEXTS)
    script = f"""
        let model = load_model("minilm", #{{ labels: ["negative", "positive"], pooling: "pooler" }});
        let data = load_dataset("rotten_tomatoes").shuffle(3).take(64).tokenize(model, #{{ max_len: 32 }}).loader(#{{ batch: 16 }});
        fit(model, data, #{{ epochs: 1, lr: 1e-4, warmup: 0.0 }});
        model.save("{out}");
        for p in predict(model, [{texts}]) {{ print(`${{p.label}} ${{p.score}}`); }}
    """
    path = out.parent / "export.rhai"
    path.write_text(script)
    run = subprocess.run([TUNEBOOK, "run", str(path), "--device", "cpu"], capture_output=True, text=True, check=True)
    ours = [(m.group(1), float(m.group(2))) for m in re.finditer(r"^(negative|positive) ([0-9.eE-]+)$", run.stdout, re.M)]
    assert len(ours) == len(TEXTS), run.stdout

    tok = transformers.AutoTokenizer.from_pretrained(out)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out, attn_implementation="eager").eval()
    enc = tok(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        probs = model(**enc).logits.softmax(-1)
    for (label, score), p in zip(ours, probs):
        assert model.config.id2label[int(p.argmax())] == label
        assert abs(float(p.max()) - score) < 1e-5, (label, score, p)


@pytest.mark.parametrize("name", ["tiny-roberta", "tiny-distilbert"])
def test_saved_roberta_and_distilbert_load_in_transformers(name):
    from safetensors.torch import load_file

    fixture = REPO / "tests" / "fixtures" / name
    out = scratch("tunebook-export-") / name
    script = out.parent / "save.rhai"
    script.write_text(f'load_model("{fixture}").save("{out}");')
    subprocess.run([TUNEBOOK, "run", str(script), "--device", "cpu"], capture_output=True, text=True, check=True)
    expected = load_file(str(fixture / "expected.safetensors"))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        logits = model(input_ids=expected["input_ids"], attention_mask=expected["attention_mask"]).logits
    assert torch.allclose(logits, expected["logits"], atol=1e-5)


def test_a_lora_adapter_saved_by_tunebook_loads_in_peft():
    peft = reference("peft")
    out = scratch("tunebook-peft-") / "adapter"
    texts = ", ".join(f'"{t}"' for t in TEXTS)
    script = f"""
        let model = load_model("minilm", #{{ labels: ["negative", "positive"], pooling: "pooler" }});
        model.add_lora(#{{ r: 4, alpha: 8, dropout: 0.0 }});
        let data = load_dataset("rotten_tomatoes").shuffle(3).take(64).tokenize(model, #{{ max_len: 32 }}).loader(#{{ batch: 16 }});
        fit(model, data, #{{ epochs: 1, lr: 5e-3, warmup: 0.0 }});
        model.save_adapter("{out}");
        for p in predict(model, [{texts}]) {{ print(`${{p.label}} ${{p.score}}`); }}
    """
    path = out.parent / "lora.rhai"
    path.write_text(script)
    run = subprocess.run([TUNEBOOK, "run", str(path), "--device", "cpu"], capture_output=True, text=True, check=True)
    ours = [(m.group(1), float(m.group(2))) for m in re.finditer(r"^(negative|positive) ([0-9.eE-]+)$", run.stdout, re.M)]
    assert len(ours) == len(TEXTS), run.stdout

    base_dir = REPO / ".cache" / "models" / "all-MiniLM-L6-v2"
    if os.environ.get("TUNEBOOK_CACHE"):
        base_dir = pathlib.Path(os.environ["TUNEBOOK_CACHE"]) / "models" / "all-MiniLM-L6-v2"
    tok = transformers.AutoTokenizer.from_pretrained(base_dir)
    base = transformers.AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=2)
    model = peft.PeftModel.from_pretrained(base, str(out)).eval()
    enc = tok(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        probs = model(**enc).logits.softmax(-1)
    for (label, score), p in zip(ours, probs):
        assert ["negative", "positive"][int(p.argmax())] == label
        assert abs(float(p.max()) - score) < 1e-5, (label, score, p)


@pytest.mark.parametrize("task", ["regression", "multi_label"])
def test_regression_and_multi_label_heads_load_in_transformers_with_the_same_outputs_and_loss(task):
    work = scratch("tunebook-task-")
    rows = [
        ("A warm and funny film.", "0.9", "comedy|drama"),
        ("Dull, slow and far too long.", "0.1", "drama"),
        ("It was fine, I suppose.", "0.5", ""),
        ("The jokes land and the cast shines.", "0.8", "comedy"),
        ("A grim war story, told with care.", "0.7", "drama|war"),
        ("Loud, silly and forgettable.", "0.2", "comedy"),
    ]
    label = "score" if task == "regression" else "tags"
    with open(work / "data.csv", "w") as f:
        f.write("text,score,tags\n" + "".join(f'"{t}",{s},{g}\n' for t, s, g in rows))
    out = work / "model"
    head = '#{ task: "regression", pooling: "pooler" }' if task == "regression" else '#{ task: "multi_label", labels: 3, pooling: "pooler" }'
    script = f"""
        let model = load_model("minilm", {head});
        let data = load_dataset("{work / 'data.csv'}", #{{ label: "{label}", task: "{task}" }}).tokenize(model, #{{ max_len: 128 }}).loader(#{{ batch: 6 }});
        fit(model, data, #{{ epochs: 3, lr: 1e-3, warmup: 0.0 }});
        model.save("{out}");
        print(`loss ${{evaluate(model, data).loss}}`);
    """
    (work / "task.rhai").write_text(script)
    run = subprocess.run([TUNEBOOK, "run", str(work / "task.rhai"), "--device", "cpu"], capture_output=True, text=True, check=True)
    ours = float(re.search(r"^loss ([0-9.eE-]+)$", run.stdout, re.M).group(1))

    tok = transformers.AutoTokenizer.from_pretrained(out)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out, attn_implementation="eager").eval()
    assert model.config.problem_type == ("regression" if task == "regression" else "multi_label_classification")
    enc = tok([t for t, _, _ in rows], padding=True, truncation=True, max_length=128, return_tensors="pt")
    if task == "regression":
        labels = torch.tensor([[float(s)] for _, s, _ in rows])
    else:
        names = [model.config.id2label[i] for i in range(3)]
        assert names == ["comedy", "drama", "war"]
        labels = torch.tensor([[float(n in g.split("|")) for n in names] for _, _, g in rows])
    with torch.no_grad():
        theirs = model(**enc, labels=labels).loss
    # transformers picks MSE or BCE from problem_type; the loss matches ours.
    assert abs(float(theirs) - ours) < 1e-5, (float(theirs), ours)


def test_a_token_classifier_loads_in_transformers_and_tags_the_same():
    work = scratch("tunebook-tokens-")
    sentences = [
        [("Microsoft", "ORG"), ("opened", "O"), ("an", "O"), ("office", "O"), ("in", "O"), ("Brussels", "LOC")],
        [("The", "O"), ("Commission", "ORG"), ("met", "O"), ("in", "O"), ("Paris", "LOC"), ("today", "O")],
        [("Unbelievably", "O"), ("Google", "ORG"), ("left", "O"), ("London", "LOC")],
    ]
    (work / "ner.conll").write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n")
    out = work / "model"
    text = "Unbelievably Microsoft left Brussels"
    script = f"""
        let data = load_dataset("{work / 'ner.conll'}", #{{ task: "token_classify" }});
        let model = load_model("minilm", #{{ task: "token_classify", labels: 3 }});
        fit(model, data.tokenize(model, #{{ max_len: 32 }}).loader(#{{ batch: 3 }}), #{{ epochs: 3, lr: 1e-3, warmup: 0.0 }});
        model.save("{out}");
        let p = predict(model, "{text}");
        for i in 0..p.words.len() {{ print(`${{p.words[i]}} ${{p.tags[i]}} ${{p.scores[i]}}`); }}
    """
    (work / "ner.rhai").write_text(script)
    run = subprocess.run([TUNEBOOK, "run", str(work / "ner.rhai"), "--device", "cpu"], capture_output=True, text=True, check=True)
    ours = [line.split() for line in run.stdout.splitlines() if len(line.split()) == 3]
    assert [w for w, _, _ in ours] == text.split(), run.stdout

    tok = transformers.AutoTokenizer.from_pretrained(out)
    model = transformers.AutoModelForTokenClassification.from_pretrained(out, attn_implementation="eager").eval()
    enc = tok(text.split(), is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        probs = model(**enc).logits.softmax(-1)[0]
    seen = set()
    firsts = [i for i, w in enumerate(enc.word_ids()) if w is not None and not (w in seen or seen.add(w))]
    for (word, tag, score), i in zip(ours, firsts):
        assert model.config.id2label[int(probs[i].argmax())] == tag, (word, tag)
        assert abs(float(probs[i].max()) - float(score)) < 1e-5, (word, score, probs[i])
