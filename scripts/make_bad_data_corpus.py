#!/usr/bin/env python3
"""Writes tests/corpus/bad-data: one folder per broken input, each with a
case.rhai that loads it. tests/bad_data.rs runs every case and checks the
error it must give (cases.json). Run again only to change the corpus; its
output is committed. Standard library only."""

import gzip
import io
import json
import pathlib
import shutil
import struct
import zipfile
import zlib

REPO = pathlib.Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "corpus" / "bad-data"
TINY = REPO / "tests" / "fixtures" / "tiny-bert"
LOAD_MODEL = 'let model = load_model("model", #{ labels: ["bad", "good"] });\n'


def case(name, script, files):
    d = OUT / name
    d.mkdir(parents=True)
    (d / "case.rhai").write_text(f"// {name}: the error this must give is in cases.json.\n{script}")
    for rel, data in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())


def model(override=None):
    """A tiny BERT folder: config, vocab and safetensors weights; `override`
    maps a file name to new content, or to None to leave the file out."""
    files = {
        "model/config.json": (TINY / "config.json").read_text(),
        "model/vocab.txt": (TINY / "vocab.txt").read_text(),
        "model/model.safetensors": (TINY / "safetensors" / "model.safetensors").read_bytes(),
    }
    files.update({f"model/{k}": v for k, v in (override or {}).items()})
    return {k: v for k, v in files.items() if v is not None}


def png(width, height, grey):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes([grey] * width) for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def idx(magic_type, dims, data):
    return bytes([0, 0, magic_type, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def malicious_pickle():
    """torch.save's zip layout, but data.pkl calls os.system("touch pwned"),
    as a hostile pytorch_model.bin would."""
    pkl = b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00touch pwnedq\x01\x85q\x02Rq\x03."
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    weights = (TINY / "safetensors" / "model.safetensors").read_bytes()
    config = json.loads((TINY / "config.json").read_text())

    case("safetensors-truncated", LOAD_MODEL, model({"model.safetensors": weights[: len(weights) // 2]}))
    case("safetensors-bad-header", LOAD_MODEL, model({"model.safetensors": struct.pack("<Q", 40) + b"{\"not\": a header at all!!}" + b"\x00" * 200}))
    case("safetensors-header-too-long", LOAD_MODEL, model({"model.safetensors": struct.pack("<Q", 1 << 62) + b"{}"}))
    case("config-wrong-shapes", LOAD_MODEL, model({"config.json": json.dumps({**config, "hidden_size": 48, "intermediate_size": 96}, indent=2)}))
    case("config-not-json", LOAD_MODEL, model({"config.json": json.dumps(config)[:100]}))
    case("tokenizer-not-json", LOAD_MODEL, model({"tokenizer.json": "this is not a tokenizer {", "vocab.txt": None}))
    case("pickle-runs-code", LOAD_MODEL, model({"model.safetensors": None, "pytorch_model.bin": malicious_pickle()}))
    case("csv-ragged-rows", 'let data = load_dataset("reviews.csv");\n', {"reviews.csv": "text,label\na fine film,good\na dull film,bad,extra\nok,good\n"})
    case("csv-utf16", 'let data = load_dataset("reviews.csv");\n', {"reviews.csv": "text,label\na fine film,good\n".encode("utf-16")})
    case("csv-empty", 'let data = load_dataset("reviews.csv");\n', {"reviews.csv": b""})
    case("csv-no-label-column", 'let data = load_dataset("reviews.csv");\n', {"reviews.csv": "text,stars\na fine film,5\n"})
    case("jsonl-broken-line", 'let data = load_dataset("reviews.jsonl");\n',
         {"reviews.jsonl": '{"text": "a fine film", "label": "good"}\n{"text": "a dull film", "label": "bad"}\n{"text": "cut off\n'})
    case("labels-out-of-range", LOAD_MODEL + 'let data = load_dataset("reviews.csv");\nlet tokens = data.tokenize(model, #{ max_len: 8 });\nfit(model, tokens.loader(#{ batch: 2 }), #{ epochs: 1 });\n',
         {"reviews.csv": "text,label\na fine film,good\na dull film,bad\nan odd film,ugly\n", **model()})
    case("label-ids-out-of-range", LOAD_MODEL + 'let data = load_dataset("reviews.csv");\nlet tokens = data.tokenize(model, #{ max_len: 8 });\nfit(model, tokens.loader(#{ batch: 2 }), #{ epochs: 1 });\n',
         {"reviews.csv": "text,label\na fine film,0\na dull film,1\nan odd film,7\n", **model()})
    images = {"images/shirt/a.png": png(8, 8, 40), "images/shirt/b.png": png(8, 8, 90)[:30], "images/shoe/c.png": png(8, 8, 200)}
    case("image-truncated", 'let data = load_dataset("images");\n', images)
    fashion = "cache/datasets/fashion_mnist"
    labels = gzip.compress(idx(0x08, [2], b"\x00\x01"), mtime=0)
    case("idx-wrong-magic", 'let data = load_dataset("fashion_mnist");\n', {
        f"{fashion}/.tunebook-complete": "",
        f"{fashion}/train-images-idx3-ubyte.gz": gzip.compress(b"\x1f\x00" + idx(0x08, [2, 2, 2], b"\x00" * 8)[2:], mtime=0),
        f"{fashion}/train-labels-idx1-ubyte.gz": labels,
    })
    case("idx-lying-header", 'let data = load_dataset("fashion_mnist");\n', {
        f"{fashion}/.tunebook-complete": "",
        f"{fashion}/train-images-idx3-ubyte.gz": gzip.compress(idx(0x08, [0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b"\x00" * 8), mtime=0),
        f"{fashion}/train-labels-idx1-ubyte.gz": labels,
    })
    case("idx-damaged-gzip", 'let data = load_dataset("fashion_mnist");\n', {
        f"{fashion}/.tunebook-complete": "",
        f"{fashion}/train-images-idx3-ubyte.gz": gzip.compress(idx(0x08, [2, 2, 2], b"\x00" * 8), mtime=0)[:20],
        f"{fashion}/train-labels-idx1-ubyte.gz": labels,
    })
    print(f"wrote {len(list(OUT.iterdir()))} cases to {OUT}")


if __name__ == "__main__":
    main()
