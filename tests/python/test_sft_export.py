"""Supervised fine-tuning as other tools read it: the answer-only labels
Tunebook tokenizes match what transformers' chat template and tokenizer
give for the same messages, token by token; a LoRA adapter Tunebook trained
and saved loads onto the base model in `peft` with the logits of
Tunebook's merged save in transformers; and an adapter `peft` saved loads
into Tunebook. Tiny random Llama from scripts/make_decoder_fixtures.py; the
reference libraries come from the venv `scripts/test` installs."""

import json
import pathlib

import pytest

from tunebook_testing import REPO, reference, run_script, scratch

torch = reference("torch")
transformers = reference("transformers")
peft = reference("peft")

BASE = REPO / "tests" / "fixtures" / "decoders" / "tiny-llama"
CHATS = [
    [{"role": "system", "content": "s"}, {"role": "user", "content": "t1"}, {"role": "assistant", "content": "red"}],
    [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}, {"role": "user", "content": "and?"}, {"role": "assistant", "content": "bye"}],
    [{"role": "system", "content": "s"}, {"role": "user", "content": "t22"}, {"role": "assistant", "content": "the blue one"}],
]


def rhai(value):
    if isinstance(value, list):
        return "[" + ", ".join(rhai(v) for v in value) + "]"
    if isinstance(value, dict):
        return "#{ " + ", ".join(f"{k}: {rhai(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def tunebook(script):
    return run_script(script, "tunebook-sft-")


def expected_labels(tokenizer, messages):
    """Next-token labels on the assistant's turns, found independently:
    each answer is what rendering through it adds to rendering before it
    with the generation prompt (transformers' own template and offsets)."""
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
            through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
            spans.append((len(before.encode()), len(through.encode())))
    enc = tokenizer(full, return_offsets_mapping=True)
    ids = enc["input_ids"]
    # Offsets are in characters; the spans in bytes (both ASCII here).
    learned = [any(a <= s < b for a, b in spans) and e > s for s, e in enc["offset_mapping"]]
    return ids, [ids[t + 1] if t + 1 < len(ids) and learned[t + 1] else -100 for t in range(len(ids))]


def test_answer_only_labels_match_transformers_token_by_token():
    _, out = tunebook(f"""
        let lm = load_model("{BASE}");
        let tokens = dataset([{", ".join("#{ messages: " + rhai(c) + " }" for c in CHATS)}]).tokenize(lm, #{{ max_len: 64 }});
        for i in 0..tokens.len() {{ let r = tokens.row(i); print(`ROW	${{r.input_ids}}	${{r.labels}}`); }}
    """)
    rows = [l.split("\t") for l in out.splitlines() if l.startswith("ROW\t")]
    tokenizer = transformers.AutoTokenizer.from_pretrained(BASE)
    assert len(rows) == len(CHATS)
    for chat, (_, ids, labels) in zip(CHATS, rows):
        want_ids, want_labels = expected_labels(tokenizer, chat)
        assert json.loads(ids) == want_ids
        assert json.loads(labels) == want_labels
        assert any(l != -100 for l in want_labels)


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


# LoRA, rank-stabilized LoRA (alpha / sqrt(r)) and DoRA (a magnitude per
# output row), alone and together, as PEFT's use_rslora and use_dora.
VARIANTS = {"lora": {}, "rslora": {"rslora": True}, "dora": {"dora": True}, "dora+rslora": {"dora": True, "rslora": True}}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_tunebook_adapter_loads_in_peft_with_the_merged_logits(variant):
    options = {"r": 4, "alpha": 8, "dropout": 0.0, **VARIANTS[variant]}
    work, _ = tunebook(f"""
        let lm = load_model("{BASE}");
        print(lm.add_lora({rhai(options)}));
        let data = dataset([{", ".join("#{ messages: " + rhai(c) + " }" for c in CHATS)}]);
        fit(lm, data.tokenize(lm, #{{ max_len: 64 }}).loader(#{{ batch: 3 }}), #{{ epochs: 5, lr: 1e-2, warmup: 0.0 }});
        lm.save_adapter("WORK/adapter");
        lm.save("WORK/merged");
    """)
    config = json.loads((work / "adapter" / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and sorted(config["target_modules"]) == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    assert (config["use_dora"], config["use_rslora"]) == (options.get("dora", False), options.get("rslora", False))
    base = transformers.AutoModelForCausalLM.from_pretrained(BASE, attn_implementation="eager").eval()
    ids = torch.tensor([[1, 5, 9, 33, 70, 120, 200, 2, 17, 250]])
    untrained = logits_of(base, ids)
    adapted = peft.PeftModel.from_pretrained(base, work / "adapter").eval()
    merged = transformers.AutoModelForCausalLM.from_pretrained(work / "merged", attn_implementation="eager").eval()
    a, m = logits_of(adapted, ids), logits_of(merged, ids)
    assert (a - untrained).abs().max().item() > 1e-3, "the adapter changed the model"
    diff = (a - m).abs().max().item()
    # Measured: 1e-6 (the same update, folded or not).
    assert diff <= 1e-4, diff


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_peft_adapter_loads_into_tunebook(variant):
    work = scratch("tunebook-peft-")
    torch.manual_seed(0)
    base = transformers.AutoModelForCausalLM.from_pretrained(BASE, attn_implementation="eager").eval()
    flags = VARIANTS[variant]
    config = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False, task_type="CAUSAL_LM",
                             use_dora=flags.get("dora", False), use_rslora=flags.get("rslora", False))
    adapted = peft.get_peft_model(base, config).eval()
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if "lora_magnitude_vector" in name:
                p.mul_(1 + 0.5 * torch.rand_like(p))  # magnitudes that differ from the weight's norms
    adapted.save_pretrained(work / "peft-adapter")
    ids = torch.tensor([[1, 5, 9, 33, 70, 120, 200, 2, 17, 250]])
    want = logits_of(adapted, ids)
    tunebook(f"""
        let lm = load_model("{BASE}");
        lm.load_adapter("{work / 'peft-adapter'}");
        lm.save("{work / 'merged'}");
    """)
    merged = transformers.AutoModelForCausalLM.from_pretrained(work / "merged", attn_implementation="eager").eval()
    diff = (logits_of(merged, ids) - want).abs().max().item()
    assert diff <= 1e-4, diff
