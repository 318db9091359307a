"""Peak memory of a Parquet dataset larger than memory, streamed
(`load_dataset(path, #{ stream: true })`) through tokenize and one epoch of
a loader (evaluate with the tiny BERT fixture: every batch read, tokenized
and run), against the same file loaded into memory.

Not run by CI (it writes gigabytes). The file is made here from Rotten
Tomatoes reviews (the bootstrap's cache), several to a row (about 1 KB, as
news articles or IMDB reviews are) and numbered, written by pyarrow without
compression so that its size is the text's size.

    .cache/test-venv/bin/python benches/streaming.py            # 2 GB
    .cache/test-venv/bin/python benches/streaming.py --gb 0.1   # quick look

Prints one table: each run's file size, rows, wall time and peak RSS (the
child's ru_maxrss), and peak RSS as a share of the file's size.
"""

import argparse
import csv
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

REPO = pathlib.Path(__file__).resolve().parents[1]
TUNEBOOK = os.environ.get("TUNEBOOK_BIN", str(REPO / "target" / "release" / "tunebook"))
CORPUS = REPO / ".cache" / "datasets" / "rotten_tomatoes" / "rotten_tomatoes_corpus_full.csv"

SCRIPT = """
let data = load_dataset("{path}", #{{ stream: {stream} }});
print(`${{data}}`);
let m = load_model("{tiny}", #{{ labels: ["rotten", "fresh"] }});
let loader = data.tokenize(m, #{{ max_len: 64 }}).loader(#{{ batch: 512 }});
let e = evaluate(m, loader);
print(`evaluated ${{loader.len()}} batches, accuracy ${{e.accuracy}}`);
"""


def make_file(path, gigabytes):
    """Writes reviews, 8 to a row, numbered, until the file holds `gigabytes` of text."""
    with open(CORPUS, newline="") as f:
        reviews = [(r["text"], r["category"]) for r in csv.DictReader(f) if r["category"] in ("fresh", "rotten")]
    target = int(gigabytes * 1e9)
    schema = pa.schema([("text", pa.string()), ("label", pa.string())])
    written, row = 0, 0
    with pq.ParquetWriter(path, schema, compression="none", use_dictionary=["label"]) as writer:
        while written < target:
            texts, labels = [], []
            for _ in range(20_000):
                start = (row * 8) % (len(reviews) - 8)
                words = " ".join(t for t, _ in reviews[start : start + 8])
                texts.append(f"{row}: {words}")
                labels.append(reviews[start][1])
                row += 1
            writer.write_table(pa.table({"text": texts, "label": labels}, schema=schema), row_group_size=100_000)
            written += sum(len(t.encode()) for t in texts)
    return row


def measure(work, path, stream):
    script = work / f"run-{'stream' if stream else 'memory'}.rhai"
    script.write_text(SCRIPT.format(path=path, stream="true" if stream else "false", tiny=REPO / "tests" / "fixtures" / "tiny-bert"))
    start = time.monotonic()
    done = subprocess.run([TUNEBOOK, "run", str(script), "--device", "cpu"], cwd=work, capture_output=True, text=True)
    seconds = time.monotonic() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode != 0:
        return None, seconds, done.stderr.strip().splitlines()[-1:]
    return peak_kb, seconds, done.stdout.strip().splitlines()


def peak_of(work, path, stream):
    """Peak RSS of one run in its own Python process, so that ru_maxrss is that run's alone."""
    out = subprocess.run([sys.executable, __file__, "--one", str(path), "--stream" if stream else "--memory", "--work", str(work)], capture_output=True, text=True)
    fields = out.stdout.strip().splitlines()[-1].split("\t") if out.stdout.strip() else ["0", "0", out.stderr[-300:]]
    return int(fields[0]), float(fields[1]), fields[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.0, help="size of the large file's text, in GB")
    ap.add_argument("--small-gb", type=float, default=0.1, help="size of the file loaded into memory too, in GB")
    ap.add_argument("--one")
    ap.add_argument("--work")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--memory", action="store_true")
    args = ap.parse_args()
    if args.one:
        peak, seconds, lines = measure(pathlib.Path(args.work), args.one, args.stream)
        print(f"{peak or 0}\t{seconds:.1f}\t{' | '.join(lines)}")
        return

    with tempfile.TemporaryDirectory(prefix="tunebook-stream-bench-", dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        work = pathlib.Path(tmp)
        small, large = work / "small.parquet", work / "large.parquet"
        rows_small = make_file(small, args.small_gb)
        rows_large = make_file(large, args.gb)
        runs = [("in memory", small, rows_small, False), ("streamed", small, rows_small, True), ("streamed", large, rows_large, True)]
        print("| run | file | rows | wall s | peak RSS | peak / file |")
        print("|---|---|---|---|---|---|")
        for name, path, rows, stream in runs:
            size = path.stat().st_size
            peak_kb, seconds, said = peak_of(work, path, stream)
            if peak_kb == 0:
                sys.exit(f"{name} run of {path.name} failed: {said}")
            peak = peak_kb * 1024
            print(f"| {name} | {size / 1e9:.2f} GB | {rows:,} | {seconds:.0f} | {peak / 1e9:.2f} GB | {peak / size:.2f}x |", flush=True)
            print(f"  ({said})", file=sys.stderr)


if __name__ == "__main__":
    main()
