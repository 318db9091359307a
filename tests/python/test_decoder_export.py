"""Every decoder family Tunebook saves loads in Hugging Face `transformers`
with the logits transformers itself computed for the original checkpoint
(tiny random Llama, Qwen2, Mistral, Gemma and GPT-2 checkpoints from
scripts/make_decoder_fixtures.py), and batched generation with left padding
gives the same tokens as transformers'. The reference libraries come from
the venv `scripts/test` installs, so this runs in CI."""

import json
import pathlib
import shutil
import subprocess

import pytest

from tunebook_testing import REPO, TUNEBOOK, reference, scratch

torch = reference("torch")
transformers = reference("transformers")
safetensors_torch = reference("safetensors.torch")

FIXTURES = REPO / "tests" / "fixtures" / "decoders"
FAMILIES = {
    "tiny-llama": "LlamaForCausalLM",
    "tiny-llama-tied": "LlamaForCausalLM",
    "tiny-qwen2": "Qwen2ForCausalLM",
    "tiny-mistral": "MistralForCausalLM",
    "tiny-gemma": "GemmaForCausalLM",
    "tiny-gpt2": "GPT2LMHeadModel",
}
PROMPTS = ["hello world", "fn main() { }", "the cat sat on the mat and"]


def from_blob(printed):
    """A string the script printed as its UTF-8 bytes (`text.to_blob()`:
    hex in brackets), which survives any control character."""
    return bytes.fromhex(printed.strip("[]").replace(" ", "")).decode("utf-8")


@pytest.fixture(scope="module")
def saved():
    out = scratch("tunebook-decoders-")
    lines = ["fn out(tag, text) { print(`${tag}\t${text.to_blob()}`); }"]
    prompts = "[" + ", ".join(json.dumps(p) for p in PROMPTS) + "]"
    for name in FAMILIES:
        lines.append(f"""{{
            let lm = load_model("{FIXTURES / name}");
            lm.save("{out / name}");
            let texts = generate(lm, {prompts}, #{{ max_new_tokens: 10, stream: false }});
            for t in texts {{ out("{name}", t); }}
        }}""")
    (out / "save.rhai").write_text("\n".join(lines))
    run = subprocess.run([TUNEBOOK, "run", str(out / "save.rhai"), "--device", "cpu"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    generated = {}
    for line in run.stdout.splitlines():
        tag, _, text = line.partition("\t")
        generated.setdefault(tag, []).append(from_blob(text))
    yield out, generated
    shutil.rmtree(out, ignore_errors=True)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_saved_decoder_loads_in_transformers_with_the_same_logits(saved, name):
    out, _ = saved
    model = transformers.AutoModelForCausalLM.from_pretrained(out / name, attn_implementation="eager").eval()
    assert type(model).__name__ == FAMILIES[name]
    e = safetensors_torch.load_file(FIXTURES / name / "expected.safetensors")
    with torch.no_grad():
        logits = model(input_ids=e["input_ids"], attention_mask=e["attention_mask"], position_ids=e["position_ids"]).logits
    real = e["attention_mask"].unsqueeze(-1).bool()
    diff = ((logits - e["logits"]).abs() * real).max().item()
    # The same weights, so only float rounding: measured 0 to 1e-6.
    assert diff <= 1e-5, diff


@pytest.mark.parametrize("name", list(FAMILIES))
def test_batched_generation_with_left_padding_matches_transformers(saved, name):
    _, generated = saved
    model = transformers.AutoModelForCausalLM.from_pretrained(FIXTURES / name, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(FIXTURES / name)
    tokenizer.padding_side = "left"
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=10, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    want = [tokenizer.decode(row[batch["input_ids"].shape[1]:], skip_special_tokens=True) for row in out]
    # transformers pads a finished row with the pad token, which decodes to nothing.
    assert generated[name] == want
