#!/usr/bin/env python3
"""Writes the decoder-only reference fixtures under tests/fixtures/decoders/:

- a tiny byte-level BPE tokenizer (SmolLM-style: single-digit split, GPT-2
  byte-level regex, ChatML template), shared by every model folder;
- tiny random fp32 models saved by transformers, one folder each: tiny-llama,
  tiny-llama-tied, tiny-llama-sharded (tiny-llama's weights in several
  shards), tiny-qwen2, tiny-mistral (sliding window 4), tiny-gemma and
  tiny-gpt2, each with expected.safetensors (input_ids, attention_mask,
  position_ids, logits, greedy);
- expected_chat.json: chat-template renderings and token ids from the tiny
  tokenizer;
- tiny-llama.gguf (tiny-llama's weights, quantized Q8_0/F16/Q4_0/Q4_1/BF16/F32,
  laid out as llama.cpp's convert_hf_to_gguf does) and
  tiny-llama-gguf-expected.safetensors (gguf-py's dequantization of every
  tensor, and what transformers' GGUF loader computes with the file).

Everything is seeded and deterministic. Run it with the test venv's python
(pinned torch, transformers, tokenizers, safetensors, gguf):

    .cache/test-venv/bin/python scripts/make_decoder_fixtures.py
"""

import copy
import json
import os
import pathlib
import random
import shutil
import tempfile

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch

REPO = pathlib.Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "decoders"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
VOCAB_TARGET = 320
NEW_TOKENS = 12
# SmolLM2-Instruct's template, as its GGUF's tokenizer.chat_template spells it.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATS = [
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there!"}],
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi! How can I help?"},
     {"role": "user", "content": "Tell me a joke about 3 cats."}],
]
STRINGS = [
    "12345 and 3.14",
    'fn main() { println!("hi"); }',
    "héllo wörld 🎉",
    "日本語のテキスト",
    "Привет, мир",
    "مرحبا بالعالم",
    "a  b   c\t\td    end  ",
    "line one\nline two\n\n  indented\r\nlast",
    "<|im_start|>user\nhi<|im_end|>",
    "The quick brown fox jumps over the lazy dog. It's 2024, isn't it?",
]


def corpus():
    """A few hundred deterministic lines: English, digits, code, accented and non-Latin words."""
    rng = random.Random(0)
    words = ("the a cat dog model token train learn data batch loss step rate fine tune layer weight "
             "attention head hidden small large quick brown fox jumps over lazy and of to in is it "
             "that this with for on at by from we you they hello world good bad run test").split()
    foreign = "café naïve résumé über señor déjà vu Straße 日本語 こんにちは 東京 привет мир спасибо مرحبا شكرا Ελληνικά".split()
    code = [
        "fn main() { println!(\"hello\"); }",
        "let x = vec![1, 2, 3];",
        "def f(x): return x * 2",
        "for i in range(10): print(i)",
        "if (a && b) { return -1; }",
        "impl Tensor { pub fn zeros(n: usize) -> Self { todo!() } }",
        "import numpy as np",
        "    x += 1  # increment",
    ]
    lines = []
    for i in range(400):
        kind = i % 5
        if kind == 0:
            s = " ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
            lines.append(s.capitalize() + rng.choice([".", "!", "?", ","]))
        elif kind == 1:
            lines.append(f"{rng.randint(0, 99999)} items cost {rng.randint(0, 999)}.{rng.randint(0, 99):02d} on {2000 + rng.randint(0, 30)}-{rng.randint(1, 12):02d}")
        elif kind == 2:
            lines.append(rng.choice(code))
        elif kind == 3:
            lines.append(" ".join(rng.choice(foreign + words) for _ in range(rng.randint(3, 8))))
        else:
            lines.append("<|im_start|>user\n" + " ".join(rng.choice(words) for _ in range(5)) + "<|im_end|>")
    return lines


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_TARGET, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    assert [tok.token_to_id(t) for t in SPECIALS] == [0, 1, 2]
    return tok


def tokenizer_config():
    added = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True} for i, t in enumerate(SPECIALS)}
    return {
        "add_bos_token": False,
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "bos_token": SPECIALS[BOS_ID],
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": SPECIALS[EOS_ID],
        "model_max_length": 64,
        "pad_token": SPECIALS[PAD_ID],
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": SPECIALS[PAD_ID],
    }


def write_tokenizer_files(folder, tok):
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2, ensure_ascii=False) + "\n")


def fixed_inputs(vocab):
    g = torch.Generator().manual_seed(1234)
    row0 = torch.randint(3, vocab, (9,), generator=g)
    row1 = torch.cat([torch.full((3,), PAD_ID), torch.randint(3, vocab, (6,), generator=g)])
    ids = torch.stack([row0, row1]).to(torch.int64)
    mask = (torch.arange(9) >= torch.tensor([[0], [3]])).to(torch.int64)
    # Position ids counted over the real tokens, as generate() does for left padding.
    positions = (mask.cumsum(-1) - 1).clamp(min=0).to(torch.int64)
    return ids, mask, positions


def randomize(model, seed, gemma_norms=False):
    """Every parameter redrawn, so that a wrong formula anywhere shows in the logits."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm = "norm" in name or ".ln_" in name or "ln_f" in name
            if p.ndim == 1 and is_norm and name.endswith("weight"):
                p.copy_((0.0 if gemma_norms else 1.0) + 0.1 * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    return model.eval()


def greedy_checks(model, prompt):
    """12 greedy tokens via generate (cache on and off) and via a plain argmax loop."""
    saved = model.generation_config
    model.generation_config = copy.deepcopy(saved)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = PAD_ID
    kwargs = dict(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS,
                  do_sample=False, eos_token_id=None, pad_token_id=PAD_ID)
    with torch.no_grad():
        cached = model.generate(**kwargs, use_cache=True)[:, prompt.shape[1]:]
        uncached = model.generate(**kwargs, use_cache=False)[:, prompt.shape[1]:]
        seq = prompt.clone()
        for _ in range(NEW_TOKENS):
            nxt = model(input_ids=seq, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
        manual = seq[:, prompt.shape[1]:]
    model.generation_config = saved
    assert cached.shape == (1, NEW_TOKENS), cached.shape
    return cached.to(torch.int64).contiguous(), bool(torch.equal(cached, uncached)), bool(torch.equal(cached, manual))


def forward(model, ids, mask, positions):
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits.float()
    # Row 1 unpadded must give the same logits on its real tokens.
    with torch.no_grad():
        alone = model(input_ids=ids[1:, 3:], use_cache=False).logits.float()
    pad_consistent = float((logits[1, 3:] - alone[0]).abs().max())
    return logits.contiguous(), pad_consistent


def save_expected(folder, ids, mask, positions, logits, greedy, meta):
    from safetensors.torch import save_file

    save_file({"input_ids": ids, "attention_mask": mask, "position_ids": positions, "logits": logits,
               "greedy": greedy}, str(folder / "expected.safetensors"),
              metadata={"fixture": json.dumps(meta, sort_keys=True)})  # one key: safetensors orders keys at random


def build_models(vocab):
    import transformers as tf

    common = dict(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                  rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                  bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID, attn_implementation="eager")
    return {
        "tiny-llama": (tf.LlamaForCausalLM, tf.LlamaConfig(**common, tie_word_embeddings=False), 1),
        "tiny-llama-tied": (tf.LlamaForCausalLM, tf.LlamaConfig(**common, tie_word_embeddings=True), 2),
        "tiny-qwen2": (tf.Qwen2ForCausalLM, tf.Qwen2Config(**common, tie_word_embeddings=False), 3),
        "tiny-mistral": (tf.MistralForCausalLM, tf.MistralConfig(**common, sliding_window=4, tie_word_embeddings=False), 4),
        "tiny-gemma": (tf.GemmaForCausalLM, tf.GemmaConfig(**common, head_dim=8, hidden_act="gelu_pytorch_tanh",
                                                           tie_word_embeddings=True), 5),
        "tiny-gpt2": (tf.GPT2LMHeadModel, tf.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                                                        n_positions=64, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
                                                        pad_token_id=PAD_ID, attn_implementation="eager"), 6),
    }


def write_models(tok, summary):
    import transformers as tf

    vocab = tok.get_vocab_size()
    ids, mask, positions = fixed_inputs(vocab)
    results = {}
    for name, (cls, config, seed) in build_models(vocab).items():
        folder = OUT / name
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model = randomize(cls(config), seed, gemma_norms=name == "tiny-gemma")
        assert model.config._attn_implementation == "eager", model.config._attn_implementation
        model.generation_config = tf.GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
        model.save_pretrained(folder, safe_serialization=True)
        write_tokenizer_files(folder, tok)
        logits, pad_consistent = forward(model, ids, mask, positions)
        greedy, cache_same, manual_same = greedy_checks(model, ids[:1])
        meta = {"generated_by": "scripts/make_decoder_fixtures.py", "transformers": tf.__version__,
                "torch": torch.__version__, "use_cache_same_greedy": cache_same, "argmax_loop_same_greedy": manual_same,
                "padded_row_matches_unpadded_max_abs": f"{pad_consistent:.3g}"}
        info = {"max_abs_logits": float(logits[mask.bool()].abs().max()), "use_cache_same_greedy": cache_same,
                "argmax_loop_same_greedy": manual_same, "padded_vs_unpadded": pad_consistent}
        if name == "tiny-mistral":
            plain_cfg = tf.MistralConfig(**{**config.to_dict(), "sliding_window": None}, attn_implementation="eager")
            plain = cls(plain_cfg).eval()
            plain.load_state_dict(model.state_dict())
            plain_logits, _ = forward(plain, ids, mask, positions)
            diff = float((plain_logits - logits)[mask.bool()].abs().max())
            meta["sliding_window_changes_logits"] = diff > 1e-4
            info["sliding_window_changes_logits"] = diff > 1e-4
            info["sliding_vs_full_max_abs"] = diff
        save_expected(folder, ids, mask, positions, logits, greedy, meta)
        summary[name] = info
        results[name] = (model, logits, greedy)
        if name == "tiny-llama":
            sharded = OUT / "tiny-llama-sharded"
            if sharded.exists():
                shutil.rmtree(sharded)
            model.save_pretrained(sharded, safe_serialization=True, max_shard_size="60KB")
            write_tokenizer_files(sharded, tok)
            shutil.copy(folder / "expected.safetensors", sharded / "expected.safetensors")
            shards = sorted(sharded.glob("model-*.safetensors"))
            assert len(shards) >= 2 and (sharded / "model.safetensors.index.json").exists(), shards
            summary["tiny-llama-sharded"] = {**info, "shards": len(shards)}
        print(f"[fixture] wrote {folder}", flush=True)
    return results, (ids, mask, positions)


def check_tokenizers(tok):
    """AutoTokenizer must give what tokenizer.json gives, in every folder."""
    from transformers import AutoTokenizer

    for folder in sorted(p for p in OUT.iterdir() if (p / "tokenizer.json").exists()):
        hf = AutoTokenizer.from_pretrained(folder)
        for s in STRINGS:
            assert hf(s)["input_ids"] == tok.encode(s).ids, (folder.name, s)
            assert hf.decode(hf(s)["input_ids"]) == s, (folder.name, s)
        assert hf.eos_token_id == EOS_ID and hf.pad_token_id == PAD_ID and hf.bos_token_id == BOS_ID, folder.name


def write_chat(tok):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(OUT / "tiny-llama")
    chats = []
    for messages in CHATS:
        entry = {"messages": messages}
        for gen in (False, True):
            text = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            key = "with_generation_prompt" if gen else "without_generation_prompt"
            entry[key] = text
            entry[key + "_ids"] = hf(text)["input_ids"]
        chats.append(entry)
    data = {
        "generated_by": "scripts/make_decoder_fixtures.py",
        "tokenizer": "tiny-llama/tokenizer.json (the same file in every model folder)",
        "vocab_size": tok.get_vocab_size(),
        "special_tokens": {t: i for i, t in enumerate(SPECIALS)},
        "chat_template": CHAT_TEMPLATE,
        "chats": chats,
        "encodings": [{"text": s, "input_ids": hf(s)["input_ids"],
                       "tokens": hf.convert_ids_to_tokens(hf(s)["input_ids"])} for s in STRINGS],
    }
    (OUT / "expected_chat.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"[fixture] wrote {OUT / 'expected_chat.json'}", flush=True)


def permute(weights, n_head, n_head_kv):
    """convert_hf_to_gguf.LlamaModel.permute: HF's rotate-half layout to llama.cpp's interleaved pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def gguf_type(name):
    import gguf

    T = gguf.GGMLQuantizationType
    if name == "token_embd.weight":
        return T.Q8_0
    if name == "output.weight":
        return T.F16
    if name.endswith("norm.weight"):
        return T.F32
    if name == "blk.1.ffn_down.weight":
        return T.BF16
    return T.Q4_0 if name.startswith("blk.0.") else T.Q4_1


def write_gguf_file(path, tensors, tok, cfg, type_of):
    """The GGUF as convert_hf_to_gguf writes a Llama with a GPT-2-style (byte-level BPE) vocabulary."""
    import gguf

    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("tiny-llama")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    w.add_vocab_size(cfg.vocab_size)
    w.add_rope_dimension_count(cfg.head_dim)
    # Tokenizer, as convert_hf_to_gguf's _set_vocab_gpt2 writes it.
    tj = json.loads(tok.to_str())
    vocab = tj["model"]["vocab"]
    by_id = {i: t for t, i in vocab.items()}
    for added in tj["added_tokens"]:
        by_id[added["id"]] = added["content"]
    tokens = [by_id[i] for i in range(cfg.vocab_size)]
    special_ids = {a["id"] for a in tj["added_tokens"] if a["special"]}
    types = [gguf.TokenType.CONTROL if i in special_ids else gguf.TokenType.NORMAL for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    w.add_add_space_prefix(False)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_unk_token_id(PAD_ID)
    w.add_pad_token_id(PAD_ID)
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name, data in tensors:
        qtype = type_of(name)
        w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_gguf(tok, llama, inputs, summary):
    import gguf
    import transformers as tf
    from safetensors.torch import save_file

    model, hf_logits, _ = llama
    cfg = model.config
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    tensors = [("token_embd.weight", sd["model.embed_tokens.weight"])]
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        tensors += [
            (f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"]),
            (f"blk.{i}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], n_head, n_head)),
            (f"blk.{i}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], n_head, n_kv)),
            (f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"]),
            (f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"]),
            (f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"]),
            (f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"]),
            (f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"]),
            (f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"]),
        ]
    tensors += [("output_norm.weight", sd["model.norm.weight"]), ("output.weight", sd["lm_head.weight"])]

    path = OUT / "tiny-llama.gguf"
    write_gguf_file(path, tensors, tok, cfg, gguf_type)
    reader = gguf.GGUFReader(str(path))
    out = {}
    layout = {}
    for t in reader.tensors:
        deq = np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        out[f"dequant.{t.name}"] = torch.from_numpy(deq.copy())
        layout[t.name] = {"type": t.tensor_type.name, "gguf_dims": [int(d) for d in t.shape], "numpy_shape": list(deq.shape)}
    # The permutation must be exactly what transformers' loader undoes.
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor
    proc = LlamaTensorProcessor({"num_attention_heads": n_head, "num_key_value_heads": n_kv})
    for i in range(cfg.num_hidden_layers):
        for short, hf in (("q", "q_proj"), ("k", "k_proj")):
            orig = sd[f"model.layers.{i}.self_attn.{hf}.weight"]
            heads = n_head if short == "q" else n_kv
            back = proc.process(permute(orig, n_head, heads), f"blk.{i}.attn_{short}.weight").weights
            assert np.array_equal(back, orig), (i, short)

    ids, mask, positions = inputs
    gm = tf.AutoModelForCausalLM.from_pretrained(str(OUT), gguf_file="tiny-llama.gguf", attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    logits, pad_consistent = forward(gm, ids, mask, positions)
    greedy, cache_same, manual_same = greedy_checks(gm, ids[:1])
    max_diff = float((logits - hf_logits)[mask.bool()].abs().max())
    # Control: the same file unquantized (not kept) must reproduce tiny-llama, so the rest is quantization error.
    with tempfile.TemporaryDirectory() as tmp:
        write_gguf_file(pathlib.Path(tmp) / "f32.gguf", tensors, tok, cfg, lambda name: gguf.GGMLQuantizationType.F32)
        fm = tf.AutoModelForCausalLM.from_pretrained(tmp, gguf_file="f32.gguf", attn_implementation="eager",
                                                     dtype=torch.float32).eval()
        f32_diff = float((forward(fm, ids, mask, positions)[0] - hf_logits)[mask.bool()].abs().max())
    # Weights the loader produced against the file's dequantization (q/k through the inverse permutation).
    gsd = gm.state_dict()
    load_exact = all(
        np.array_equal(gsd[hf].numpy(), proc.process(out[f"dequant.{g}"].numpy(), g).weights)
        for g, hf in [("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"),
                      ("blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight"),
                      ("blk.1.ffn_down.weight", "model.layers.1.mlp.down_proj.weight"),
                      ("token_embd.weight", "model.embed_tokens.weight"),
                      ("output.weight", "lm_head.weight")])
    out.update({"input_ids": ids, "attention_mask": mask, "position_ids": positions, "logits": logits, "greedy": greedy})
    meta = {"generated_by": "scripts/make_decoder_fixtures.py", "transformers": tf.__version__, "gguf": "0.19.0",
            "use_cache_same_greedy": cache_same, "argmax_loop_same_greedy": manual_same,
            "max_abs_diff_vs_tiny_llama": f"{max_diff:.4g}",
            "f32_gguf_max_abs_diff_vs_tiny_llama": f"{f32_diff:.3g}", "tensors": layout}
    save_file(out, str(OUT / "tiny-llama-gguf-expected.safetensors"), metadata={"fixture": json.dumps(meta, sort_keys=True)})

    # The tokenizer transformers rebuilds from the GGUF metadata, against tokenizer.json.
    tok_agree = None
    try:
        gtok = tf.AutoTokenizer.from_pretrained(str(OUT), gguf_file="tiny-llama.gguf")
        tok_agree = {s: gtok(s)["input_ids"] == tok.encode(s).ids for s in STRINGS}
    except Exception as e:  # noqa: BLE001 - only reported
        tok_agree = f"failed: {type(e).__name__}: {e}"
    summary["tiny-llama.gguf"] = {"max_abs_logits": float(logits[mask.bool()].abs().max()),
                                  "gguf_vs_hf_max_abs_logit_diff": max_diff,
                                  "f32_gguf_vs_hf_max_abs_logit_diff": f32_diff, "use_cache_same_greedy": cache_same,
                                  "argmax_loop_same_greedy": manual_same, "padded_vs_unpadded": pad_consistent,
                                  "loaded_weights_equal_dequant": load_exact,
                                  "greedy_same_as_tiny_llama": bool(torch.equal(greedy, llama[2])),
                                  "gguf_tokenizer_agrees": tok_agree, "layout": layout}
    print(f"[fixture] wrote {path} and tiny-llama-gguf-expected.safetensors", flush=True)


def print_summary(summary):
    from safetensors import safe_open

    print("\n==== summary ====")
    total = 0
    for entry in sorted(OUT.iterdir()):
        files = [entry] if entry.is_file() else sorted(entry.iterdir())
        size = sum(f.stat().st_size for f in files)
        total += size
        print(f"{entry.name}: {size} bytes")
        for f in files:
            if entry.is_dir():
                print(f"    {f.name}: {f.stat().st_size}")
            if f.suffix == ".safetensors" and "expected" in f.name:
                with safe_open(str(f), "pt") as st:
                    shapes = {k: (tuple(st.get_slice(k).get_shape()), st.get_slice(k).get_dtype()) for k in st.keys()
                              if not k.startswith("dequant.")}
                print(f"      {shapes}")
    print(f"total: {total} bytes")
    for name, info in summary.items():
        print(name, json.dumps({k: v for k, v in info.items() if k != "layout"}, ensure_ascii=False))
    for name, lay in summary["tiny-llama.gguf"]["layout"].items():
        print(f"    {name}: {lay}")


def main():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.set_default_dtype(torch.float32)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    tok = make_tokenizer()
    summary = {}
    results, inputs = write_models(tok, summary)
    check_tokenizers(tok)
    write_chat(tok)
    write_gguf(tok, results["tiny-llama"], inputs, summary)
    print_summary(summary)


if __name__ == "__main__":
    main()
