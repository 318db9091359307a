"""PyTorch + transformers' side of the side-by-side benchmarks: the same
figures as benches/suite.rs, on the same model, data and threads, printed as
the same JSON lines. scripts/bench runs it in the pinned reference venv.

    python benches/reference.py COMMAND CACHE [--threads N] [--steps N] [--repeats N] [--rows N]

Started as ranks (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set), train-*
trains with DistributedDataParallel over Gloo, each rank on its half of the
global batch of 16, and rank 0 prints train_<mode>_ranks<N>.

Commands: train-full, train-head, train-lora (a plain eager loop), train-full-bf16 (the same under CPU bf16 autocast), trainer
(HF Trainer, full fine-tuning), eval, memory, gemm, data; and phases, which
prints where a full step's time goes (as `cargo bench --bench train_step --
--phases` does for Tunebook).
"""

import argparse
import csv
import json
import os
import pathlib
import resource
import time

import torch
from transformers import AutoModel, AutoTokenizer

BATCH, MAX_LEN = 16, 64


class MeanPoolClassifier(torch.nn.Module):
    """What Tunebook's `load_model("minilm", #{ pooling: "mean" })` builds: the
    encoder, mean pooling over real tokens, dropout 0.1 and a linear head."""

    def __init__(self, model_dir):
        super().__init__()
        self.encoder = AutoModel.from_pretrained(model_dir, attn_implementation="sdpa", add_pooling_layer=False)
        self.dropout = torch.nn.Dropout(0.1)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 2)

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        logits = self.head(self.dropout(pooled))
        if labels is None:
            return {"logits": logits}
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def reviews(cache, rows):
    with open(cache / "datasets" / "rotten_tomatoes" / "rotten_tomatoes_corpus_full.csv", newline="") as f:
        kept = [r for r in csv.DictReader(f) if r["category"] in ("rotten", "fresh")]
    kept = kept[:rows] if rows else kept
    return [r["text"] for r in kept], torch.tensor([0 if r["category"] == "rotten" else 1 for r in kept])


def emit(figure, unit, values, impl="pytorch", **extra):
    print(json.dumps({"figure": figure, "impl": impl, "unit": unit, "values": values, **extra}))


def setup(cache, rows=BATCH):
    model_dir = cache / "models" / "all-MiniLM-L6-v2"
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = MeanPoolClassifier(model_dir)
    texts, labels = reviews(cache, rows)
    return tok, model, texts, labels


def optimizer(params):
    # Tunebook's AdamW: decay 0.01 on weights, none on biases and LayerNorm.
    decay = [p for n, p in params if p.ndim >= 2]
    no_decay = [p for n, p in params if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=2e-5)


def train(args, mode, bf16=False):
    """`steps` training steps of the eager loop; `bf16`: the forward pass and
    the loss under CPU autocast in bfloat16, the logits cast to fp32 for the
    loss (CPU autocast does not do that itself), as Tunebook's bf16 does."""
    tok, model, texts, labels = setup(args.cache)
    if mode == "head":
        for p in model.encoder.parameters():
            p.requires_grad_(False)
    elif mode == "lora":
        from peft import LoraConfig, get_peft_model

        model.encoder = get_peft_model(model.encoder, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"]))
    batch = tok(texts, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = optimizer(params)
    model.train()
    world, rank, net = 1, 0, model
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        dist.init_process_group("gloo")
        world, rank = dist.get_world_size(), dist.get_rank()
        net = DistributedDataParallel(model)
        # This rank's rows of the global batch, strided as Tunebook shards.
        batch = {k: v[rank::world] for k, v in batch.items()}
        labels = labels[rank::world]

    def step():
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = net(**batch)["logits"]
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        else:
            loss = net(**batch, labels=labels)["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    values = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        values.append(args.steps * BATCH / (time.perf_counter() - start))
    if rank != 0:
        return
    emit(f"train_{mode}" + ("_bf16" if bf16 else "") + (f"_ranks{world}" if world > 1 else ""), "samples/s", values, seq_len=batch["input_ids"].shape[1], trainable_params=sum(p.numel() for _, p in params))


def phases(args):
    """Where a full step's time goes, as train_step.rs --phases prints it for Tunebook."""
    tok, model, texts, labels = setup(args.cache)
    if args.lora:
        from peft import LoraConfig, get_peft_model

        model.encoder = get_peft_model(model.encoder, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"]))
    batch = tok(texts, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = optimizer(params)
    model.train()
    totals = {"zero_grad": 0.0, "forward": 0.0, "backward": 0.0, "clip": 0.0, "step": 0.0}
    for i in range(3 + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        t1 = time.perf_counter()
        loss = model(**batch, labels=labels)["loss"]
        loss.item()
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        t4 = time.perf_counter()
        opt.step()
        t5 = time.perf_counter()
        if i >= 3:
            for k, v in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                totals[k] += v
    print("phases ms: " + " ".join(f"{k} {v * 1e3 / args.steps:.1f}" for k, v in totals.items()))


def trainer(args):
    """HF Trainer, full fine-tuning, the same batch every step."""
    from transformers import Trainer, TrainingArguments

    tok, model, texts, labels = setup(args.cache)
    enc = tok(texts, padding=True, truncation=True, max_length=MAX_LEN)
    rows = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "token_type_ids": enc["token_type_ids"][i], "labels": int(labels[i])} for i in range(len(texts))]

    def collate(features):
        return {k: torch.tensor([f[k] for f in features]) for k in features[0]}

    values = []
    for repeat in range(args.repeats + 1):
        targs = TrainingArguments(
            output_dir="/tmp/tunebook-bench-trainer", per_device_train_batch_size=BATCH, max_steps=args.steps, learning_rate=2e-5,
            weight_decay=0.01, max_grad_norm=1.0, lr_scheduler_type="constant", logging_strategy="no", save_strategy="no",
            report_to=[], use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=0,
        )
        t = Trainer(model=model, args=targs, train_dataset=rows * args.steps, data_collator=collate)
        result = t.train()
        if repeat > 0:  # the first is a warm-up
            values.append(result.metrics["train_samples_per_second"])
    emit("train_full", "samples/s", values, impl="hf_trainer")


def evaluate(args):
    tok, model, texts, labels = setup(args.cache)
    batch = tok(texts, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
    model.eval()
    with torch.inference_mode():
        model(**batch)
        values = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(args.steps):
                model(**batch, labels=labels)["logits"].argmax(-1)
            values.append(args.steps * BATCH / (time.perf_counter() - start))
    emit("eval", "samples/s", values)


def memory(args):
    tok, model, texts, labels = setup(args.cache, args.rows)
    params = [(n, p) for n, p in model.named_parameters()]
    opt = optimizer(params)
    model.train()
    for i in range(0, len(texts), BATCH):
        batch = tok(texts[i:i + BATCH], padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        loss = model(**batch, labels=labels[i:i + BATCH])["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        opt.step()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    emit("peak_memory", "MB", [peak_mb], rows=args.rows)


def gemm(args):
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    values = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        values.append(2 * n**3 * 5 / (time.perf_counter() - start) / 1e9)
    emit("gemm_fp32", "GFLOP/s", values, n=n)


def data(args):
    model_dir = args.cache / "models" / "all-MiniLM-L6-v2"
    tok = AutoTokenizer.from_pretrained(model_dir)
    texts, _ = reviews(args.cache, 0)
    values = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        order = torch.randperm(len(texts)).tolist()
        for i in range(0, len(order), BATCH):
            tok([texts[j] for j in order[i:i + BATCH]], padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        values.append(len(texts) / (time.perf_counter() - start))
    emit("data_tokenize_collate", "rows/s", values, rows=len(texts))


def generate(args):
    """SmolLM2 from its GGUF through transformers' GGUF loader, fp32: load
    seconds, greedy tokens per second with the KV cache, time to the first
    token of a 256-token prompt (as suite.rs `generate`)."""
    from transformers import AutoModelForCausalLM

    folder, name = args.cache / "models" / "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"
    loads = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loads.append(time.perf_counter() - start)
    text = "The history of the old city begins with a small market by the river, where traders met every morning. "

    def prompt(n):
        return torch.tensor([tok(text * (n // 10 + 1))["input_ids"][:n]])

    def run(ids, n):
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n, do_sample=False)
        assert out.shape[1] - ids.shape[1] == n
        return time.perf_counter() - start

    short, long = prompt(8), prompt(256)
    run(short, 2)
    rates, first = [], []
    for _ in range(args.repeats):
        rates.append(args.steps / run(short, args.steps))
        first.append(run(long, 1))
    emit("load_gguf", "s", loads, impl="transformers")
    emit("generate_tokens", "tokens/s", rates, impl="transformers", new_tokens=args.steps, prompt_tokens=short.shape[1])
    emit("time_to_first_token", "s", first, impl="transformers", prompt_tokens=long.shape[1])


def bbc_articles(cache, n):
    """The first n BBC News articles in Tunebook's order (topic folders and
    files sorted), each on one line."""
    root = cache / "datasets" / "bbc_news"
    files = sorted(p for d in sorted(root.iterdir()) if d.is_dir() for p in sorted(d.glob("*.txt")))
    return [f.read_text(encoding="utf-8", errors="replace").replace("\n", " ") for f in files[:n]]


def sft(args):
    """SmolLM2 with LoRA r=16 (alpha 32, no dropout) on every projection in
    PEFT, batch 4 x 256 tokens, AdamW 1e-4, clipping at 1.0 (as suite.rs
    `sft`): tokens per second, and the peak resident set size of the timed
    steps (the load excluded, as on Tunebook's side)."""
    import peft
    from transformers import AutoModelForCausalLM

    folder, name = args.cache / "models" / "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32, attn_implementation="sdpa")
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = peft.get_peft_model(model, peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM"))
    model.train()
    rows = [tok(t)["input_ids"][:256] for t in bbc_articles(args.cache, 4)]
    assert all(len(r) == 256 for r in rows)
    ids = torch.tensor(rows)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    rates, peaks = [], []
    for _ in range(args.repeats):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        rates.append(args.steps * ids.numel() / (time.perf_counter() - start))
        peaks.append(peak_rss_mb())
    emit("sft_tokens", "tokens/s", rates, impl="peft", batch=4, seq_len=256, trainable_params=sum(p.numel() for p in params))
    emit("sft_peak_memory", "MB", peaks, impl="peft", batch=4, seq_len=256)


def peak_rss_mb():
    with open("/proc/self/status") as f:
        kib = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    return kib * 1024 / 1e6


def mobilenet(args):
    """torchvision's MobileNetV2 with the bootstrap's ImageNet weights and a
    new 10-class head (as suite.rs `mobilenet`)."""
    import torchvision

    m = torchvision.models.mobilenet_v2()
    m.load_state_dict(torch.load(args.cache / "models" / "mobilenet_v2" / "mobilenet_v2-b0353104.pth", weights_only=True))
    m.classifier[1] = torch.nn.Linear(1280, 10)
    return m


def image_batch(channels_last=False):
    """32 images of 96x96, normalized: the step's cost does not depend on the pixels."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 3, 96, 96, generator=g), torch.randint(10, (32,), generator=g)
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y


def per_second(call, items, args, warmup):
    """Items per second of `call` (which handles `items` each time) over
    args.repeats timed runs of args.steps calls, after `warmup` calls."""
    for _ in range(warmup):
        call()
    values = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            call()
        values.append(args.steps * items / (time.perf_counter() - start))
    return values


def image_train(args, channels_last=False):
    """MobileNetV2 at 96 pixels, batch 32, AdamW 1e-4 (decay 0.01 on weights,
    none on biases and norms), every layer training: images per second.
    `channels_last`: the inputs laid out as Tunebook lays them out, which
    torchvision users must ask for."""
    m = mobilenet(args).train()
    decay = [p for p in m.parameters() if p.ndim > 1]
    no_decay = [p for p in m.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
    x, y = image_batch(channels_last)

    def step():
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    emit("image_train", "images/s", per_second(step, 32, args, warmup=2), impl=image_impl(channels_last), batch=32, side=96)


def image_eval(args, channels_last=False):
    """The same network in evaluation mode under inference_mode: images per second."""
    m = mobilenet(args).eval()
    x, _ = image_batch(channels_last)
    with torch.inference_mode():
        values = per_second(lambda: m(x), 32, args, warmup=1)
    emit("image_eval", "images/s", values, impl=image_impl(channels_last), batch=32, side=96)


def image_impl(channels_last):
    return "torchvision_channels_last" if channels_last else "torchvision"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command")
    p.add_argument("cache", type=pathlib.Path)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--lora", action="store_true", help="phases: add LoRA r=8 on query and value first")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    commands = {"train-full": lambda: train(args, "full"), "train-head": lambda: train(args, "head"), "train-lora": lambda: train(args, "lora"),
                "train-full-bf16": lambda: train(args, "full", bf16=True),
                "trainer": lambda: trainer(args), "phases": lambda: phases(args), "eval": lambda: evaluate(args), "memory": lambda: memory(args), "gemm": lambda: gemm(args), "data": lambda: data(args),
                "generate": lambda: generate(args), "sft": lambda: sft(args), "image-train": lambda: image_train(args), "image-eval": lambda: image_eval(args),
                "image-train-channels-last": lambda: image_train(args, channels_last=True), "image-eval-channels-last": lambda: image_eval(args, channels_last=True)}
    if args.command not in commands:
        raise SystemExit(f"no benchmark '{args.command}'; commands: {', '.join(commands)}")
    commands[args.command]()


if __name__ == "__main__":
    main()
