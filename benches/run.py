"""Runs the side-by-side benchmarks and writes the table (standard library
only; scripts/bench sets up what it calls). Every figure is the median of
several runs, with their range, and Tunebook's against the reference's
measured in the same session on the same machine.

    python3 benches/run.py --out DIR [--tiny] [--only FIGURE,...] [--reference-python PY] [--kernel-python PY] [--threads N]

Writes DIR/results.json and DIR/results.md and prints the table.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

# Each figure: Tunebook's suite command, the reference commands measuring the
# same thing, and its settings (full run, tiny run). Repeats alternate
# between the sides, one process each, so that drift in the machine's speed
# hits both alike.
FIGURES = [
    ("gemm", ["gemm"], {"repeats": (5, 2)}),
    ("train-full", ["train-full", "trainer"], {"steps": (10, 2), "repeats": (5, 2)}),
    ("train-head", ["train-head"], {"steps": (10, 2), "repeats": (5, 2)}),
    ("train-lora", ["train-lora"], {"steps": (10, 2), "repeats": (5, 2)}),
    # The full step under bf16 autocast, against PyTorch's CPU autocast.
    ("train-full-bf16", ["train-full-bf16"], {"steps": (10, 2), "repeats": (5, 2)}),
    ("eval", ["eval"], {"steps": (10, 2), "repeats": (5, 2)}),
    ("memory", ["memory"], {"rows": (256, 32), "repeats": (3, 1)}),
    ("data", ["data"], {"repeats": (5, 1)}),
    ("script", [], {"steps": (10, 2), "repeats": (3, 1)}),
    # Generation: `steps` is the number of new tokens.
    ("generate", ["generate"], {"steps": (128, 4), "repeats": (3, 1)}),
    # Supervised fine-tuning of SmolLM2 with LoRA: `steps` optimizer steps of 4 x 256 tokens.
    ("sft", ["sft"], {"steps": (5, 1), "repeats": (3, 1)}),
    ("sft-packing", [], {"steps": (5, 1), "repeats": (2, 1)}),
    # Image backbones: MobileNetV2 at 96 pixels, batch 32.
    ("image-train", ["image-train", "image-train-channels-last"], {"steps": (5, 1), "repeats": (3, 1)}),
    ("image-eval", ["image-eval", "image-eval-channels-last"], {"steps": (10, 1), "repeats": (3, 1)}),
    ("image-loader", [], {"steps": (10, 1), "repeats": (3, 1)}),
    # train-full again as 2 ranks on this machine (Gloo over loopback, the
    # threads shared out), against PyTorch DDP launched the same way.
    ("train-full", ["train-full"], {"steps": (10, 2), "repeats": (5, 1), "ranks": 2}),
]


def settings(spec, tiny):
    """Command-line settings for one process: one timed repeat."""
    i = 1 if tiny else 0
    args = ["--repeats", "1"]
    for key in ("steps", "rows"):
        if key in spec:
            args += [f"--{key}", str(spec[key][i])]
    return args


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def json_lines(cmd, ranks=1):
    """Runs a benchmark command (as `ranks` processes of a distributed run
    when more than 1, each with its share of the threads); its figures, one
    JSON line each (HF Trainer prints its own lines too)."""
    if ranks > 1:
        port, threads = free_port(), cmd[cmd.index("--threads") + 1]
        cmd = [*cmd[:cmd.index("--threads")], "--threads", str(max(1, int(threads) // ranks)), *cmd[cmd.index("--threads") + 2:]]
        procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(ranks), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
                 for r in range(ranks)]
        outs = [p.communicate() for p in procs]
        failed = [(r, p.returncode, outs[r][1]) for r, p in enumerate(procs) if p.returncode != 0]
        if failed:
            raise SystemExit(f"benchmark failed as {ranks} ranks: {' '.join(cmd)}\n" + "\n".join(f"rank {r} ({rc}): {err[-2000:]}" for r, rc, err in failed))
        stdout = outs[0][0]
    else:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"benchmark failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
        stdout = done.stdout
    found = []
    for line in stdout.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "figure" in value:
            found.append(value)
    if not found:
        raise SystemExit(f"benchmark printed no figure: {' '.join(cmd)}\n{stdout[-2000:]}")
    return found


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values), "values": values}


def flops_per_sample(cache, lengths):
    """Training FLOPs of one sample through MiniLM, averaged over a batch of
    rows with `lengths` real tokens: forward (2 per multiply-add of the
    layers' linear maps and of attention over the row's own tokens) times 3
    for the backward pass. Padding is not the model's work and is not
    counted (PaLM's model FLOPs), nor are embedding look-ups and element-wise
    work."""
    config = json.loads((cache / "models" / "all-MiniLM-L6-v2" / "config.json").read_text())
    d, ff, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    per_row = [layers * (2 * (4 * d * d + 2 * d * ff) * n + 4 * n * n * d) for n in lengths]
    return 3 * sum(per_row) / len(per_row)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=pathlib.Path, required=True)
    p.add_argument("--tiny", action="store_true", help="seconds, not minutes: checks that the harness runs, not a measurement")
    p.add_argument("--reference-python", help="a Python with torch, transformers and peft (omit to skip the PyTorch side)")
    p.add_argument("--kernel-python", help="a Python with jupyter_client and ipykernel (omit to skip the kernel figures)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--only", help="comma-separated suite commands to run (train-full, gemm, ...); kernels count as 'kernels'")
    args = p.parse_args()
    cache = pathlib.Path(os.environ.get("TUNEBOOK_CACHE", REPO / ".cache"))
    threads = ["--threads", str(args.threads)]
    results = []

    def log(msg):
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    # Built once, then run directly: `cargo bench` per process would rebuild
    # in the middle of a measurement if a source changed.
    log("building the suite")
    built = subprocess.run(["cargo", "bench", "--bench", "suite", "--no-run", "--message-format=json"], cwd=REPO, capture_output=True, text=True, check=True)
    suite = next(m["executable"] for m in map(json.loads, built.stdout.splitlines()) if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "suite")
    only = set(args.only.split(",")) if args.only else None
    for name, reference, spec in FIGURES:
        if only and name not in only:
            continue
        repeats = spec["repeats"][1 if args.tiny else 0]
        ranks = spec.get("ranks", 1)
        label = f"{name} as {ranks} ranks" if ranks > 1 else name
        for r in range(repeats):
            log(f"{label} {r + 1}/{repeats}: tunebook")
            results += json_lines([suite, name, *threads, *settings(spec, args.tiny)], ranks)
            for ref in reference if args.reference_python else []:
                log(f"{label} {r + 1}/{repeats}: pytorch {ref}")
                results += json_lines([args.reference_python, "benches/reference.py", ref, str(cache), *threads, *settings(spec, args.tiny)], ranks)
    if args.kernel_python and (not only or "kernels" in only):
        log("kernels")
        counts = ["--starts", "2", "--round-trips", "10"] if args.tiny else ["--starts", "5", "--round-trips", "50"]
        results += json_lines([args.kernel_python, "benches/kernel_latency.py", *counts])

    by = {}
    for r in results:
        key = (r["figure"], r["impl"])
        values = by.get(key, {}).get("values", []) + r["values"]
        by[key] = {**r, **summary(values)}
    rows = table_rows(by, cache)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "threads": args.threads, "platform": platform.platform(), "processor": platform.processor()},
        "tiny": args.tiny,
        "figures": [v for v in by.values()],
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(rows, report)
    (args.out / "results.md").write_text(md)
    print(md)


def fmt(x):
    return f"{x:.3g}" if abs(x) < 100 else f"{x:,.0f}"


def cell(s):
    if s is None:
        return "not run"
    if s["n"] == 1:
        return f"{fmt(s['median'])}"
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def table_rows(by, cache):
    """One row per comparison: what, unit, Tunebook, reference, ratio and
    which way is better."""
    rows = []

    def add(what, unit, ours, theirs, reference, higher_is_better, target=""):
        ratio = None
        if ours and theirs:
            ratio = ours["median"] / theirs["median"] if higher_is_better else theirs["median"] / ours["median"]
        rows.append({"what": what, "unit": unit, "tunebook": ours, "reference": theirs, "reference_name": reference, "ratio": ratio, "target": target})

    g = by.get
    add("fp32 GEMM 2048² (libtorch)", "GFLOP/s", g(("gemm_fp32", "tunebook")), g(("gemm_fp32", "pytorch")), "PyTorch", True)
    add("fine-tuning step, full", "samples/s", g(("train_full", "tunebook")), g(("train_full", "pytorch")), "PyTorch eager loop", True, "≥ 1.0, aim 1.1")
    add("fine-tuning step, full", "samples/s", g(("train_full", "tunebook")), g(("train_full", "hf_trainer")), "HF Trainer", True)
    add("fine-tuning step, head only", "samples/s", g(("train_head", "tunebook")), g(("train_head", "pytorch")), "PyTorch eager loop", True)
    add("fine-tuning step, LoRA r=8", "samples/s", g(("train_lora", "tunebook")), g(("train_lora", "pytorch")), "PyTorch + PEFT", True)
    add("fine-tuning step, full, bf16 autocast", "samples/s", g(("train_full_bf16", "tunebook")), g(("train_full_bf16", "pytorch")), "PyTorch CPU autocast (bf16)", True, "≥ 1.0")
    # Each side's bf16 step over its own fp32 step (the medians' ratio).
    speedup = lambda bf16, fp32: summary([bf16["median"] / fp32["median"]]) if bf16 and fp32 else None
    ours_up, theirs_up = speedup(g(("train_full_bf16", "tunebook")), g(("train_full", "tunebook"))), speedup(g(("train_full_bf16", "pytorch")), g(("train_full", "pytorch")))
    if ours_up:
        rows.append({"what": "fine-tuning step, full: bf16 autocast over fp32", "unit": "× fp32", "tunebook": ours_up, "reference": theirs_up, "reference_name": "PyTorch's bf16 over its fp32", "ratio": None, "target": "≥ 1.5 with AVX-512 BF16"})
    full, gemm = g(("train_full", "tunebook")), g(("gemm_fp32", "tunebook"))
    if full and gemm:
        # Older suite binaries report only the padded length.
        flops = flops_per_sample(cache, full.get("lengths") or [full["seq_len"]])
        mfu = [v * flops / 1e9 / gemm["median"] * 100 for v in full["values"]]
        theirs = g(("train_full", "pytorch"))
        their_mfu = [v * flops / 1e9 / g(("gemm_fp32", "pytorch"))["median"] * 100 for v in theirs["values"]] if theirs and g(("gemm_fp32", "pytorch")) else None
        add(f"model FLOPs utilisation, full step ({flops / 1e9:.2f} GFLOP/sample, real tokens)", "% of GEMM peak", summary(mfu), summary(their_mfu) if their_mfu else None, "PyTorch", True)
        if full.get("lengths"):
            lengths = full["lengths"]
            share = summary([100 * (1 - sum(lengths) / (len(lengths) * full["seq_len"]))])
            rows.append({"what": "share of padding in the training steps' batch (Tunebook's encoders skip it)", "unit": "%", "tunebook": share, "reference": share, "reference_name": "the same batch", "ratio": None, "target": ""})
    add("fine-tuning step, full, 2 processes (Gloo; global batch 16)", "samples/s", g(("train_full_ranks2", "tunebook")), g(("train_full_ranks2", "pytorch")), "PyTorch DDP", True)
    one, two = g(("train_full", "tunebook")), g(("train_full_ranks2", "tunebook"))
    their_one, their_two = g(("train_full", "pytorch")), g(("train_full_ranks2", "pytorch"))
    if one and two:
        scaling = lambda a, b: summary([b["median"] / a["median"]])
        add("scaling from 1 to 2 processes, same cores", "× one process", scaling(one, two), scaling(their_one, their_two) if their_one and their_two else None, "PyTorch 1 → DDP 2", True)
    add("evaluation (no grad)", "samples/s", g(("eval", "tunebook")), g(("eval", "pytorch")), "PyTorch inference_mode", True)
    add("peak memory, one full fine-tuning epoch", "MB", g(("peak_memory", "tunebook")), g(("peak_memory", "pytorch")), "PyTorch", False, "≤ PyTorch")
    add("tokenize + collate", "rows/s", g(("data_tokenize_collate", "tunebook")), g(("data_tokenize_collate", "pytorch")), "HF fast tokenizer, per batch", True)
    data, train = g(("data_tokenize_collate", "tunebook")), g(("train_full", "tunebook"))
    if data and train:
        rows.append({"what": "data pipeline against the training step", "unit": "rows/s ÷ samples/s", "tunebook": summary([data["median"] / train["median"]]), "reference": None, "reference_name": "", "ratio": None, "target": "data ≫ training"})
    add("generation, SmolLM2-135M fp32, batch 1, KV cache, greedy", "tokens/s", g(("generate_tokens", "tunebook")), g(("generate_tokens", "transformers")), "transformers generate", True, "≥ 1.3, aim 2")
    add("time to first token, 256-token prompt", "s", g(("time_to_first_token", "tunebook")), g(("time_to_first_token", "transformers")), "transformers generate", False)
    add("load SmolLM2 from GGUF (Q4_1 → fp32)", "s", g(("load_gguf", "tunebook")), g(("load_gguf", "transformers")), "transformers GGUF loader", False)
    add("SFT step, SmolLM2 + LoRA r=16 on every projection, 4 x 256 tokens", "tokens/s", g(("sft_tokens", "tunebook")), g(("sft_tokens", "peft")), "transformers + PEFT", True, "≥ 1.0, aim 1.2")
    add("peak memory of those SFT steps", "MB", g(("sft_peak_memory", "tunebook")), g(("sft_peak_memory", "peft")), "transformers + PEFT", False, "≤ PEFT")
    packed, unpacked = g(("sft_packed", "tunebook")), g(("sft_unpacked", "tunebook"))
    add("SFT on the headline task (batch 4), real tokens packed against unpadded rows", "tokens/s", packed, unpacked, "Tunebook unpacked", True)
    if packed and unpacked:
        rows.append({"what": "share of padding, headline task: packed (unpacked)", "unit": "%", "tunebook": summary([100 * packed["padding_share"]]), "reference": summary([100 * unpacked["padding_share"]]), "reference_name": "unpacked", "ratio": None, "target": ""})
    add("training step, MobileNetV2 at 96 px, batch 32, every layer", "images/s", g(("image_train", "tunebook")), g(("image_train", "torchvision")), "PyTorch + torchvision eager", True, "≥ 1.0")
    add("training step, MobileNetV2 at 96 px, batch 32, every layer", "images/s", g(("image_train", "tunebook")), g(("image_train", "torchvision_channels_last")), "the same, inputs channels-last as Tunebook's", True)
    add("evaluation, MobileNetV2 at 96 px", "images/s", g(("image_eval", "tunebook")), g(("image_eval", "torchvision")), "torchvision, inference_mode", True, "≥ 1.0")
    add("evaluation, MobileNetV2 at 96 px", "images/s", g(("image_eval", "tunebook")), g(("image_eval", "torchvision_channels_last")), "the same, inputs channels-last as Tunebook's", True)
    loader, step = g(("image_loader", "tunebook")), g(("image_train", "tunebook"))
    if loader and step:
        rows.append({"what": "image loader with resized crops, flips and colour jitter, against the training step", "unit": "images/s ÷ images/s", "tunebook": summary([loader["median"] / step["median"]]), "reference": None, "reference_name": "", "ratio": None, "target": "> 3"})
    add("kernel start to kernel_info_reply", "s", g(("kernel_start", "tunebook")), g(("kernel_start", "ipykernel")), "ipykernel", False, "< 0.3 s, ≥ 1.5")
    add("kernel start to the first cell's reply", "s", g(("first_cell", "tunebook")), g(("first_cell", "ipykernel")), "ipykernel", False)
    add("trivial execute round trip", "ms", g(("execute_round_trip", "tunebook")), g(("execute_round_trip", "ipykernel")), "ipykernel", False, "≥ 5")
    add("interrupt to the busy cell's reply", "ms", g(("interrupt", "tunebook")), g(("interrupt", "ipykernel")), "ipykernel", False)
    add("a training run from a Rhai script", "s", g(("script_run", "tunebook")), g(("script_run", "rust")), "the same run from Rust", False, "≈ 1.0 (noise)")
    return rows


def markdown(rows, report):
    lines = [
        f"Measured {report['date']} on {report['machine']['cpus']} CPUs ({report['machine']['processor'] or report['machine']['platform']}), "
        f"{report['machine']['threads']} threads{'; TINY configuration: checks the harness, not a measurement' if report['tiny'] else ''}. "
        "Median (min–max) of the runs. Ratio: how many times better Tunebook is (above 1 is better, for times and memory too).",
        "",
        "| figure | unit | Tunebook | reference | against | ratio | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "–"
        lines.append(f"| {r['what']} | {r['unit']} | {cell(r['tunebook'])} | {cell(r['reference']) if r['reference_name'] else '–'} | {r['reference_name'] or '–'} | {ratio} | {r['target']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
