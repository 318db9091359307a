"""The PyTorch + transformers side of the training-step benchmark: the same
MiniLM, the same 16 reviews (up to 64 tokens), eager mode, AdamW, clipping
at 1.0, dropout on. Prints steps per second in the format the Rust side uses.
Run by scripts/bench-train-step inside the pinned reference venv; --sgd times
plain SGD instead of AdamW."""

import csv
import pathlib
import sys
import time

import torch
from transformers import AutoModel, AutoTokenizer

cache = pathlib.Path(sys.argv[1])
threads, steps = int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
model_dir = cache / "models" / "all-MiniLM-L6-v2"
with open(cache / "datasets" / "rotten_tomatoes" / "rotten_tomatoes_corpus_full.csv", newline="") as f:
    rows = [r for r in csv.DictReader(f) if r["category"] in ("rotten", "fresh")][:16]
texts = [r["text"] for r in rows]
labels = torch.tensor([0 if r["category"] == "rotten" else 1 for r in rows])

tok = AutoTokenizer.from_pretrained(model_dir)
encoder = AutoModel.from_pretrained(model_dir, attn_implementation="sdpa")
head = torch.nn.Linear(encoder.config.hidden_size, 2)
batch = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
params = list(encoder.parameters()) + list(head.parameters())
opt = torch.optim.SGD(params, lr=2e-5) if "--sgd" in sys.argv else torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01)
encoder.train()


def step():
    hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    loss = torch.nn.functional.cross_entropy(head(torch.nn.functional.dropout(pooled, 0.1, True)), labels)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return loss.item()


for _ in range(3):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
per_step = (time.perf_counter() - start) / steps
print(f"pytorch steps_per_sec {1 / per_step:.4f} ms_per_step {per_step * 1e3:.1f} threads {threads} steps {steps}")
