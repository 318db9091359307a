"""The benchmark harness runs from the README's command in its tiny
configuration, so that it cannot rot. The numbers of a tiny run mean
nothing; what is checked is that every figure is produced and written. The
PyTorch side runs only where its 5 GB reference venv is already installed
(scripts/bench installs it on a full run)."""

import json
import os
import pathlib
import subprocess

from tunebook_testing import REPO

CACHE = pathlib.Path(os.environ.get("TUNEBOOK_CACHE", REPO / ".cache"))
REFERENCE = (CACHE / "hf-reference-venv" / "bin" / "python").exists() and subprocess.run(
    [str(CACHE / "hf-reference-venv" / "bin" / "python"), "-c", "import torch, transformers, peft, accelerate"], capture_output=True
).returncode == 0


def test_tiny_benchmark_run_writes_every_figure(tmp_path):
    cmd = [str(REPO / "scripts" / "bench"), "--tiny", "--out", str(tmp_path)] + ([] if REFERENCE else ["--no-reference"])
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["tiny"] is True
    figures = {(f["figure"], f["impl"]): f for f in report["figures"]}
    for figure in ("gemm_fp32", "train_full", "train_full_ranks2", "train_head", "train_lora", "train_full_bf16", "eval", "peak_memory", "data_tokenize_collate", "script_run", "kernel_start", "execute_round_trip", "generate_tokens", "time_to_first_token", "load_gguf", "sft_tokens", "sft_peak_memory", "sft_packed", "sft_unpacked", "image_train", "image_eval", "image_loader"):
        assert figures[(figure, "tunebook")]["median"] > 0, figure
    for figure in ("kernel_start", "first_cell", "execute_round_trip", "interrupt"):
        assert figures[(figure, "tunebook")]["median"] > 0, figure
        assert figures[(figure, "ipykernel")]["median"] > 0, figure
    assert figures[("script_run", "rust")]["median"] > 0
    # LoRA trains far fewer parameters than full fine-tuning; head-only fewer still.
    assert figures[("train_head", "tunebook")]["trainable_params"] < figures[("train_lora", "tunebook")]["trainable_params"] < figures[("train_full", "tunebook")]["trainable_params"]
    rows = {(r["what"], r["reference_name"]): r for r in report["rows"]}
    assert rows[("trivial execute round trip", "ipykernel")]["ratio"] > 0
    assert rows[("fine-tuning step, full: bf16 autocast over fp32", "PyTorch's bf16 over its fp32")]["tunebook"]["median"] > 0
    if REFERENCE:
        assert rows[("fine-tuning step, full", "PyTorch eager loop")]["ratio"] > 0
        assert rows[("fine-tuning step, full", "HF Trainer")]["ratio"] > 0
    table = (tmp_path / "results.md").read_text()
    assert "| figure | unit | Tunebook | reference | against | ratio | target |" in table
    assert "trivial execute round trip" in table and table in done.stdout
