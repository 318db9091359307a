"""SmolLM2's tokenizer, which Tunebook builds from the GGUF file's metadata
(byte-level BPE, 48,900 merges, the `smollm` pre-tokenizer that splits
digits one by one before GPT-2's split), gives the same ids as a Hugging
Face `tokenizers` tokenizer built from the same vocabulary, merges and
pre-tokenizer, and decodes every one of 1,000 varied strings back to itself.
The reference libraries come from the venv `scripts/test` installs."""

import json
import os
import pathlib
import random
import subprocess

from tunebook_testing import REPO, TUNEBOOK, reference, scratch

gguf = reference("gguf")
tokenizers = reference("tokenizers")

CACHE = pathlib.Path(os.environ.get("TUNEBOOK_CACHE") or REPO / ".cache")
GGUF = CACHE / "models" / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXTS = [
    "12345 and 3.14159, or 1,000,000 -- 2024-12-01T10:00:00Z",
    'fn main() {\n    println!("{}", 40 + 2);\n}\n',
    "def f(x):\n\treturn x ** 2  # square\n",
    "héllo wörld, naïve café, Ærøskøbing",
    "Emoji: 🎉🚀👩‍👩‍👧‍👦 ✨ and flags 🇫🇷🇯🇵",
    "日本語のテキストと漢字、ひらがな。",
    "Привет, как дела? Всё хорошо.",
    "مرحبا بالعالم، كيف حالك؟",
    "हिन्दी में लिखा गया वाक्य।",
    "   leading spaces, trailing   \n\n\n  and runs\t\tof tabs",
    "<|im_start|>user\nHi there<|im_end|>\n",
    "URLs: https://example.com/path?q=1&r=two#frag, e-mail a.b@c.org",
    "Mixed123Numbers456and789letters",
    "",
]
POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" \t\n  .,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`")
    + list("éèêëàâäôöûüçñßøåæœ") + list("日本語中文字한국어") + list("приветмирΑΒΓαβγ") + list("مرحباשלוםहिन्दी")
    + ["🎉", "🚀", "👩‍💻", "❤️", "🇫🇷", "e\u0301", "\u200d", "\ufeff", "\u00a0", "<|im_end|>", "<|endoftext|>", "\r\n"]
)


def varied_strings(n, seed=0):
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def rhai_string(s):
    # Rhai reads JSON's escapes for these; other characters go in as they are.
    return json.dumps(s, ensure_ascii=False)


def reference_tokenizer():
    reader = gguf.GGUFReader(str(GGUF))
    field = lambda k: reader.fields[k].contents()
    tokens, kinds, merges = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type"), field("tokenizer.ggml.merges")
    bpe = tokenizers.models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[tuple(m.split(" ", 1)) for m in merges])
    tok = tokenizers.Tokenizer(bpe)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Sequence([
        tokenizers.pre_tokenizers.Digits(individual_digits=True),
        tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.decoder = tokenizers.decoders.ByteLevel()
    tok.add_special_tokens([tokenizers.AddedToken(t, special=True) for t, k in zip(tokens, kinds) if k == 3])
    return tok


def test_gguf_tokenizer_matches_tokenizers_and_round_trips():
    strings = varied_strings(1000)
    script = "let lm = load_model(\"smollm2\");\n"
    script += "for t in [" + ", ".join(rhai_string(t) for t in TEXTS) + "] { print(`IDS\t${lm.encode(t)}`); }\n"
    script += "let bad = [];\nfor s in [" + ", ".join(rhai_string(s) for s in strings) + "] { if lm.decode(lm.encode(s)) != s { bad.push(s.to_blob()); } }\n"
    script += "print(`ROUNDTRIP\t${bad.len()}\t${bad}`);\n"
    work = scratch("tunebook-tokenizer-")
    (work / "tok.rhai").write_text(script)
    run = subprocess.run([TUNEBOOK, "run", str(work / "tok.rhai"), "--device", "cpu"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [l.split("\t") for l in run.stdout.splitlines()]
    ids = [json.loads(l[1]) for l in lines if l[0] == "IDS"]
    tok = reference_tokenizer()
    assert len(ids) == len(TEXTS)
    for text, got in zip(TEXTS, ids):
        assert got == tok.encode(text).ids, text
    failures = [l for l in lines if l[0] == "ROUNDTRIP"][0]
    assert failures[1] == "0", f"strings that do not survive encode and decode: {failures[2][:500]}"
    # The reference agrees on the round trips too, so the strings are fair.
    assert all(tok.decode(tok.encode(s).ids, skip_special_tokens=False) == s for s in strings)
