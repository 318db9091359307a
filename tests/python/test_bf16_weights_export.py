"""`weights: "bf16"` as other tools read it: a language model Tunebook
stores in bf16 saves its matrices as BF16 safetensors, which transformers
loads with the logits of the original model whose same weights were rounded
to bf16; and a LoRA adapter trained on that bf16 base loads in PEFT onto
the rounded base with the loss Tunebook computed. Tiny random Llama from
scripts/make_decoder_fixtures.py; the reference libraries come from the
venv `scripts/test` installs."""

import json

from tunebook_testing import REPO, reference, run_script

torch = reference("torch")
transformers = reference("transformers")
peft = reference("peft")
safetensors = reference("safetensors")

BASE = REPO / "tests" / "fixtures" / "decoders" / "tiny-llama"
TEXT = "the cat sat on the mat and the dog sat on the log"


def tunebook(script):
    return run_script(script, "tunebook-bf16-")


def rounded_base():
    """The fixture in fp32 with every matrix rounded through bf16: what a
    bf16-stored model computes with."""
    model = transformers.AutoModelForCausalLM.from_pretrained(BASE, attn_implementation="eager").eval()
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return model


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_a_bf16_stored_model_saves_bf16_matrices_that_transformers_loads_as_the_rounded_model():
    work, _ = tunebook(f"""
        let lm = load_model("{BASE}", #{{ weights: "bf16" }});
        lm.save("WORK/saved");
    """)
    with safetensors.safe_open(str(work / "saved" / "model.safetensors"), framework="pt") as f:
        kinds = {name: f.get_slice(name).get_dtype() for name in f.keys()}
    assert kinds["model.embed_tokens.weight"] == "BF16"
    assert kinds["model.layers.0.mlp.down_proj.weight"] == "BF16"
    assert kinds["model.norm.weight"] == "F32", "norms stay fp32"
    assert json.loads((work / "saved" / "config.json").read_text())["torch_dtype"] == "bfloat16"
    saved = transformers.AutoModelForCausalLM.from_pretrained(work / "saved", attn_implementation="eager", torch_dtype=torch.float32).eval()
    ids = torch.tensor([[1, 5, 9, 33, 70, 120, 200, 2, 17, 250]])
    diff = (logits_of(saved, ids) - logits_of(rounded_base(), ids)).abs().max().item()
    # The same rounded weights: measured 0.
    assert diff <= 1e-6, diff
    in_bf16 = transformers.AutoModelForCausalLM.from_pretrained(work / "saved", attn_implementation="eager", torch_dtype=torch.bfloat16).eval()
    assert in_bf16.model.embed_tokens.weight.dtype == torch.bfloat16
    assert torch.isfinite(logits_of(in_bf16, ids).float()).all()


def test_a_lora_adapter_trained_on_bf16_weights_loads_in_peft_with_tunebooks_loss():
    work, out = tunebook(f"""
        let lm = load_model("{BASE}", #{{ weights: "bf16" }});
        lm.add_lora(#{{ r: 4, alpha: 8, dropout: 0.0 }});
        let rows = [];
        for i in 0..6 {{ rows.push(#{{ messages: [#{{ role: "system", content: "s" }}, #{{ role: "user", content: `q${{i}}` }}, #{{ role: "assistant", content: "red" }}] }}); }}
        fit(lm, dataset(rows).tokenize(lm, #{{ max_len: 64 }}).loader(#{{ batch: 3 }}), #{{ epochs: 3, lr: 1e-2, warmup: 0.0 }});
        lm.save_adapter("WORK/adapter");
        print(`LOSS\t${{evaluate(lm, {json.dumps(TEXT)}).loss}}`);
    """)
    loss = float(next(l for l in out.splitlines() if l.startswith("LOSS\t")).split("\t")[1])
    tokenizer = transformers.AutoTokenizer.from_pretrained(BASE)
    ids = tokenizer(TEXT, return_tensors="pt")["input_ids"]
    base = rounded_base()
    with torch.no_grad():
        untrained = base(input_ids=ids, labels=ids).loss.item()
        adapted = peft.PeftModel.from_pretrained(base, work / "adapter").eval()
        want = adapted(input_ids=ids, labels=ids).loss.item()
    assert abs(want - untrained) > 1e-3, "the adapter changed the model"
    # The same rounded base and fp32 update: measured about 1e-7.
    assert abs(loss - want) <= 1e-5, (loss, want)
