#!/usr/bin/env python3
"""Writes the reference fixtures the Rust tests compare against:

- tests/fixtures/tiny-bert/: a tiny random BERT saved by transformers both as
  pytorch_model.bin (torch.save's zip format) and as safetensors, with a
  small vocab.txt, for the .bin reader;
- tests/fixtures/tiny-roberta/ and tiny-distilbert/: tiny random models of
  the other BERT-family architectures with sequence-classification heads,
  plus expected.safetensors (their hidden states and logits for fixed ids);
- tests/fixtures/{adamw,adam,sgd_momentum,sgd_nesterov}_steps.safetensors:
  torch.optim's updates for given gradients and learning rates (a zero-rate
  step included), with and without weight decay;
- tests/fixtures/tiny-bert/expected.safetensors: its hidden states for
  fixed ids;
- tests/fixtures/training-steps/: a tiny BERT classifier and what four whole
  fine-tuning steps do to it in PyTorch (AdamW with decay and no-decay
  groups, linear warmup, clip_grad_norm_ above its limit): losses, gradient
  norms, rates and the final weights; plus the per-step rates of the other
  schedules (Hugging Face's and torch.optim.lr_scheduler's), what
  ReduceLROnPlateau does on a sequence of losses, and clip_grad_norm_ on
  recorded gradients;
- tests/fixtures/minilm_parity.{json,safetensors}: what Hugging Face
`transformers` computes for the cached all-MiniLM-L6-v2 on sentences that
cover padding, truncation, case and accents. tests/model_parity.rs compares
Tunebook's forward pass against it.

It installs its own pinned torch + transformers into a venv in the cache the
first time (about 5 GB); CI never runs it, it only reads the fixture.

Usage: scripts/make_parity_fixture.py [--only-optimizers | --only-training | --only-loss-scale]   (after scripts/bootstrap)
"""

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("TUNEBOOK_CACHE") or REPO / ".cache")
MODEL = CACHE / "models" / "all-MiniLM-L6-v2"
VENV = CACHE / "hf-reference-venv"
PINS = ["torch==2.11.0", "transformers==4.57.1", "numpy==2.4.6", "safetensors==0.8.0"]
OUT = REPO / "tests" / "fixtures"
MAX_LEN = 24

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar.",
    "The stock market fell sharply on Tuesday.",
    "Shares dropped steeply at the start of the week.",
    "I love this film!",
    "Photosynthesis converts light into chemical energy in plants.",
    "CAFÉ Déjà Vu: naïve résumé, übermäßig COOL.",
    "This sentence is deliberately long so that it runs well past the twenty-four token limit and must be truncated by the tokenizer before the model sees it.",
    "ok",
]
# (i, j, "paraphrase" | "unrelated")
PAIRS = [(0, 1, "paraphrase"), (2, 3, "paraphrase"), (0, 5, "unrelated"), (2, 4, "unrelated")]


def ensure_reference_env():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("TUNEBOOK_IN_REFERENCE_VENV"):
        sys.exit("torch/transformers are still missing inside the reference venv")
    if not (VENV / "bin" / "python").exists():
        print(f"[fixture] creating {VENV} with {' '.join(PINS)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", *PINS], check=True)
    env = dict(os.environ, TUNEBOOK_IN_REFERENCE_VENV="1")
    os.execve(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), __file__, *sys.argv[1:]], env)


def write_tiny_bert():
    import torch
    from transformers import BertConfig, BertModel

    out = OUT / "tiny-bert"
    out.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + "the a film is good bad great dull fun long short love hate story actor plot ##s ##ing ##ed".split()
    (out / "vocab.txt").write_text("\n".join(words) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    model = BertModel(config).eval()
    model.save_pretrained(out, safe_serialization=False)
    model.save_pretrained(out / "safetensors", safe_serialization=True)
    print(f"[fixture] wrote {out}")
    write_tiny_bert_expected()


def write_tiny_bert_expected():
    """The saved tiny BERT's last hidden states for fixed ids, one row padded."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertModel

    out = OUT / "tiny-bert"
    model = BertModel.from_pretrained(out / "safetensors", attn_implementation="eager").eval()
    ids = torch.tensor([[2, 5, 9, 11, 7, 3], [2, 6, 13, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    save_file({"input_ids": ids, "attention_mask": mask, "last_hidden_state": hidden.contiguous()}, str(out / "expected.safetensors"))
    print(f"[fixture] wrote {out / 'expected.safetensors'}")


# The whole-step fixture: 16 rows in batches of 4, in order, over the tiny
# vocabulary; words past the vocabulary become [UNK].
STEP_ROWS = [
    ("the film is good", "good"), ("a dull plot", "bad"), ("great fun and a great story", "good"), ("bad", "bad"),
    ("love the actor", "good"), ("the story is long and dull", "bad"), ("short and fun", "good"), ("hate the plot", "bad"),
    ("a good story is a good film", "good"), ("the acting is bad", "bad"), ("fun", "good"), ("long long long", "bad"),
    ("great", "good"), ("dull dull film", "bad"), ("the plot is great fun", "good"), ("a bad actor in a bad film", "bad"),
]
STEP_LR = 5e-3
STEP_BATCH = 4
STEP_WARMUP = 2  # of 4 steps: share 0.5
STEP_MAX_NORM = 1.0


def write_training_steps():
    """Four whole fine-tuning steps in PyTorch, as Trainer takes them."""
    import shutil

    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer, get_linear_schedule_with_warmup

    src, out = OUT / "tiny-bert", OUT / "training-steps"
    out.mkdir(parents=True, exist_ok=True)
    config = BertConfig.from_pretrained(src)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.num_labels = 2
    config.id2label, config.label2id = {0: "bad", 1: "good"}, {"bad": 0, "good": 1}
    torch.manual_seed(1)
    model = BertForSequenceClassification.from_pretrained(src / "safetensors", config=config, attn_implementation="eager")
    # A head with larger weights than N(0, 0.02), so that the first
    # gradients are above the clipping limit.
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(out, safe_serialization=True)
    shutil.copy(src / "vocab.txt", out / "vocab.txt")
    tok = BertTokenizer(str(src / "vocab.txt"))
    (out / "rows.tsv").write_text("".join(f"{t}\t{l}\n" for t, l in STEP_ROWS))

    decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith(".bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=STEP_LR, betas=(0.9, 0.999), eps=1e-8)
    steps = len(STEP_ROWS) // STEP_BATCH
    schedule = get_linear_schedule_with_warmup(opt, STEP_WARMUP, steps)
    tensors, losses, norms, lrs = {}, [], [], []
    model.train()
    for step in range(steps):
        rows = STEP_ROWS[step * STEP_BATCH:(step + 1) * STEP_BATCH]
        enc = tok([t for t, _ in rows], padding=True, truncation=True, max_length=16, return_tensors="pt")
        labels = torch.tensor([config.label2id[l] for _, l in rows])
        loss = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"], labels=labels).loss
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), STEP_MAX_NORM)
        lrs.append(schedule.get_last_lr()[0])
        opt.step()
        schedule.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        norms.append(norm.item())
        tensors[f"input_ids_{step}"] = enc["input_ids"].contiguous()
    assert max(norms) > STEP_MAX_NORM, f"no gradient norm above the clipping limit: {norms}"
    for name, value in model.state_dict().items():
        tensors[f"after.{name}"] = value.detach().contiguous()
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    tensors["grad_norms"] = torch.tensor(norms, dtype=torch.float64)
    tensors["lrs"] = torch.tensor(lrs, dtype=torch.float64)
    write_schedules(tensors)
    save_file(tensors, str(out / "expected.safetensors"))
    print(f"[fixture] wrote {out}: losses {losses}, gradient norms {norms}, rates {lrs}")


def write_schedules(tensors):
    """Per-step rates of each schedule over 3 epochs of 4 steps, the rates
    ReduceLROnPlateau leaves after each of a sequence of losses, and
    clip_grad_norm_ on recorded gradients above and below its limit."""
    import torch
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    total, warmup, lr = 12, 3, 1e-3

    def rates(make):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
        sched = make(opt)
        out = []
        for _ in range(total):
            out.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        return torch.tensor(out, dtype=torch.float64)

    tensors["schedule_linear"] = rates(lambda o: get_linear_schedule_with_warmup(o, warmup, total))
    tensors["schedule_cosine"] = rates(lambda o: get_cosine_schedule_with_warmup(o, warmup, total))
    tensors["schedule_constant"] = rates(lambda o: get_constant_schedule_with_warmup(o, warmup))
    # Tunebook's one_cycle does not cycle momentum (Adam's beta1).
    tensors["schedule_one_cycle"] = rates(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=lr, total_steps=total, pct_start=warmup / total, cycle_momentum=False))
    tensors["schedule_one_cycle_default_start"] = rates(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=lr, total_steps=total, cycle_momentum=False))

    losses = [1.0, 0.9, 0.89995, 0.95, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7, 0.71, 0.72]
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1, threshold=1e-4)
    after = []
    for loss in losses:
        plateau.step(loss)
        after.append(opt.param_groups[0]["lr"])
    tensors["plateau_losses"] = torch.tensor(losses, dtype=torch.float64)
    tensors["plateau_scales"] = torch.tensor(after, dtype=torch.float64)

    torch.manual_seed(3)
    grads = [torch.randn(4, 3), torch.randn(7), torch.randn(2, 2, 2) * 0.1]
    for i, g in enumerate(grads):
        tensors[f"clip_grad_{i}"] = g.clone()
    for limit, tag in [(0.5, "above"), (100.0, "below")]:
        params = [torch.zeros_like(g, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, limit)
        tensors[f"clip_{tag}_norm"] = norm.detach().reshape(1).double()
        tensors[f"clip_{tag}_limit"] = torch.tensor([limit], dtype=torch.float64)
        for i, p in enumerate(params):
            tensors[f"clip_{tag}_{i}"] = p.grad.clone()


def write_tiny_family():
    import torch
    from safetensors.torch import save_file
    from transformers import (DistilBertConfig, DistilBertForSequenceClassification,
                              RobertaConfig, RobertaForSequenceClassification)

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + "the a film is good bad great dull fun long short love hate story actor plot ##s ##ing ##ed".split()
    # Two rows, the second padded, so that position ids and masks are exercised.
    ids = torch.tensor([[2, 5, 9, 11, 7, 3], [2, 6, 13, 3, 0, 0]])
    mask = (ids != 0).long()
    models = {
        "tiny-roberta": RobertaForSequenceClassification(RobertaConfig(
            vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=40, type_vocab_size=1, pad_token_id=0, num_labels=3)),
        "tiny-distilbert": DistilBertForSequenceClassification(DistilBertConfig(
            vocab_size=len(words), dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=40,
            pad_token_id=0, num_labels=3)),
    }
    for name, model in models.items():
        torch.manual_seed(0)
        model.init_weights()
        model.eval()
        out = OUT / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "vocab.txt").write_text("\n".join(words) + "\n")
        model.save_pretrained(out, safe_serialization=True)
        with torch.no_grad():
            result = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        save_file({"input_ids": ids, "attention_mask": mask, "last_hidden_state": result.hidden_states[-1].contiguous(),
                   "logits": result.logits.contiguous()}, str(out / "expected.safetensors"))
        print(f"[fixture] wrote {out}")


def write_optimizer_steps():
    """torch.optim's updates on recorded gradients: AdamW (its bias gradients
    run from 1e-9, where eps dominates the update, up to 1e-4), Adam, SGD with
    momentum and SGD with Nesterov momentum; a decayed weight, an undecayed
    bias, and one zero-rate step each."""
    import torch
    from safetensors.torch import save_file

    cases = {
        "adamw": (1, [0.0, 1e-3, 5e-4, 2e-3, 1e-4, 3e-3], lambda i: 10 ** (i - 9),
                  lambda groups: torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)),
        "adam": (2, [1e-3, 5e-4, 2e-3, 0.0, 3e-3, 1e-4], lambda i: 0.1,
                 lambda groups: torch.optim.Adam(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)),
        "sgd_momentum": (2, [1e-3, 5e-4, 2e-3, 0.0, 3e-3, 1e-4], lambda i: 0.1,
                         lambda groups: torch.optim.SGD(groups, lr=1e-2, momentum=0.9)),
        "sgd_nesterov": (2, [1e-3, 5e-4, 2e-3, 0.0, 3e-3, 1e-4], lambda i: 0.1,
                         lambda groups: torch.optim.SGD(groups, lr=1e-2, momentum=0.9, nesterov=True)),
    }
    for name, (seed, lrs, bias_scale, make) in cases.items():
        torch.manual_seed(seed)
        weight = torch.randn(4, 3, requires_grad=True)
        bias = torch.randn(3, requires_grad=True)
        tensors = {"weight_init": weight.detach().clone(), "bias_init": bias.detach().clone()}
        opt = make([{"params": [weight], "weight_decay": 0.01}, {"params": [bias], "weight_decay": 0.0}])
        for i, lr in enumerate(lrs):
            for group in opt.param_groups:
                group["lr"] = lr
            weight.grad = torch.randn(4, 3)
            bias.grad = torch.randn(3) * bias_scale(i)
            tensors[f"weight_grad_{i}"] = weight.grad.clone()
            tensors[f"bias_grad_{i}"] = bias.grad.clone()
            opt.step()
            tensors[f"weight_after_{i}"] = weight.detach().clone()
            tensors[f"bias_after_{i}"] = bias.detach().clone()
        tensors["lrs"] = torch.tensor(lrs, dtype=torch.float64)
        save_file(tensors, str(OUT / f"{name}_steps.safetensors"))
        print(f"[fixture] wrote {OUT / f'{name}_steps.safetensors'}")


def write_loss_scale_steps():
    """fp16's dynamic loss scaling as torch.amp.GradScaler does it: gradients
    that come out of a scaled loss (some overflowed: inf, -inf, NaN), unscaled,
    clipped at 1.0, and stepped by AdamW unless they overflowed; the scale
    backs off on overflow and grows after 2 good steps."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(3)
    weight = torch.randn(4, 3, requires_grad=True)
    bias = torch.randn(3, requires_grad=True)
    tensors = {"weight_init": weight.detach().clone(), "bias_init": bias.detach().clone()}
    opt = torch.optim.AdamW([{"params": [weight], "weight_decay": 0.01}, {"params": [bias], "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_factor=2.0, backoff_factor=0.5, growth_interval=2)
    poison = {2: ("weight", float("inf")), 5: ("bias", float("nan")), 6: ("weight", float("-inf"))}
    steps = 10
    for i in range(steps):
        opt.zero_grad()
        raw = {"weight": torch.randn(4, 3), "bias": torch.randn(3)}
        if i in poison:
            name, value = poison[i]
            raw[name].view(-1)[0] = value
        # A loss whose gradient is the raw one: backward gives it times the scale.
        loss = (weight * raw["weight"]).sum() + (bias * raw["bias"]).sum()
        scaler.scale(loss).backward()
        tensors[f"weight_grad_{i}"] = weight.grad.clone()
        tensors[f"bias_grad_{i}"] = bias.grad.clone()
        scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_([weight, bias], 1.0)
        tensors[f"norm_{i}"] = norm.detach().clone().double().reshape(1)
        scaler.step(opt)
        scaler.update()
        tensors[f"scale_after_{i}"] = torch.tensor([scaler.get_scale()], dtype=torch.float64)
        tensors[f"weight_after_{i}"] = weight.detach().clone()
        tensors[f"bias_after_{i}"] = bias.detach().clone()
    tensors["skipped"] = torch.tensor([1 if i in poison else 0 for i in range(steps)], dtype=torch.int64)
    save_file(tensors, str(OUT / "grad_scaler_steps.safetensors"))
    print(f"[fixture] wrote {OUT / 'grad_scaler_steps.safetensors'}")


def main():
    ensure_reference_env()
    if "--only-loss-scale" in sys.argv:
        write_loss_scale_steps()
        return
    if "--only-training" in sys.argv:
        write_tiny_bert_expected()
        write_training_steps()
        return
    write_optimizer_steps()
    write_loss_scale_steps()
    if "--only-optimizers" in sys.argv:
        return
    write_tiny_bert()
    write_training_steps()
    write_tiny_family()
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoTokenizer

    if not (MODEL / "config.json").exists():
        sys.exit(f"{MODEL} is missing: run scripts/bootstrap first")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModel.from_pretrained(MODEL, attn_implementation="eager").eval()
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state.float()
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    embeddings = torch.nn.functional.normalize(pooled, dim=-1)
    cosines = [float(embeddings[i] @ embeddings[j]) for i, j, _ in PAIRS]

    OUT.mkdir(parents=True, exist_ok=True)
    save_file(
        {
            "input_ids": enc["input_ids"].to(torch.int64).contiguous(),
            "token_type_ids": enc["token_type_ids"].to(torch.int64).contiguous(),
            "attention_mask": enc["attention_mask"].to(torch.int64).contiguous(),
            "last_hidden_state": hidden.contiguous(),
            "embeddings": embeddings.contiguous(),
        },
        str(OUT / "minilm_parity.safetensors"),
    )
    meta = {
        "generated_by": "scripts/make_parity_fixture.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "max_len": MAX_LEN,
        "sentences": SENTENCES,
        "pairs": [{"a": i, "b": j, "kind": k, "cosine": c} for (i, j, k), c in zip(PAIRS, cosines)],
    }
    (OUT / "minilm_parity.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    for (i, j, k), c in zip(PAIRS, cosines):
        print(f"[fixture] {k:10} cos={c:.3f}  {SENTENCES[i]!r} / {SENTENCES[j]!r}")
    print(f"[fixture] wrote {OUT / 'minilm_parity.safetensors'} and minilm_parity.json")


if __name__ == "__main__":
    main()
