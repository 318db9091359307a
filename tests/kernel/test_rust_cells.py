"""`%%rust` cells through a real kernel and jupyter_client.

A default build answers a Rust cell with an error that says how to get
them. A build with `--features rust-cells` (scripts/test-rust-cells) runs
them in evcxr: a Rust cell computes values that Rhai reads, reads Rhai's,
and a compile error points at the cell's line. The first Rust cell compiles
for tens of seconds; the test prints the first and later cells' latencies.
"""

import time

import pytest
from test_kernel_behaviour import run, result_text, stdout_text

FIRST_CELL_TIMEOUT = 600


def rust_cells_built(kc):
    """Runs a first Rust cell; False on a build without the feature."""
    reply, outputs = run(kc, "%%rust\nlet probe = 1;", timeout=FIRST_CELL_TIMEOUT)
    if reply["status"] == "error" and reply["ename"] == "RustCellsNotBuilt":
        return False
    assert reply["status"] == "ok", reply
    # The slow first use is announced, not a silent wait.
    stderr = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
    assert "Starting Rust cells (evcxr)" in stderr and "Rust cells ready" in stderr, stderr
    return True


def test_rust_cells_without_the_feature_say_how_to_build_them(kernel):
    _, kc = kernel
    reply, _ = run(kc, "%%rust\nlet x = 1;", timeout=FIRST_CELL_TIMEOUT)
    if reply["status"] == "ok":
        pytest.skip("this tunebook is built with rust-cells; the other tests cover it")
    assert reply["ename"] == "RustCellsNotBuilt", reply
    assert "--features rust-cells" in reply["evalue"]
    # The Rhai session is untouched.
    reply, outputs = run(kc, "40 + 2")
    assert reply["status"] == "ok" and result_text(outputs) == "42"


def test_a_rust_cell_hands_values_to_rhai_and_reads_rhai_values(kernel):
    _, kc = kernel
    started = time.monotonic()
    if not rust_cells_built(kc):
        pytest.skip("this tunebook is built without the rust-cells feature; scripts/test-rust-cells runs this test")
    first = time.monotonic() - started

    # Rust computes; Rhai reads.
    started = time.monotonic()
    reply, outputs = run(kc, '%%rust\nlet squares: Vec<i64> = (1..=4).map(|i| i * i).collect();\ntunebook::set("squares", &squares);\ntunebook::set("mean", &(squares.iter().sum::<i64>() as f64 / 4.0));\nprintln!("hello from rust");', timeout=FIRST_CELL_TIMEOUT)
    later = time.monotonic() - started
    assert reply["status"] == "ok", reply
    assert "hello from rust" in stdout_text(outputs)
    reply, outputs = run(kc, "squares.len() * 100 + mean.to_int()")
    assert reply["status"] == "ok" and result_text(outputs) == "407", outputs

    # Rhai values, tensors included, go to Rust; a custom metric comes back.
    reply, _ = run(kc, 'let lr = 0.5; let t = tensor([[1.0, 2.0], [3.0, 4.0]]); let name = "abc";')
    assert reply["status"] == "ok"
    reply, outputs = run(kc, '%%rust\nlet t = tunebook::get_tensor("t");\nlet scaled: Vec<f32> = t.data.iter().map(|x| x * tunebook::get_f64("lr") as f32).collect();\ntunebook::set("scaled", &tunebook::Tensor { shape: t.shape.clone(), data: scaled });\ntunebook::set("n", &tunebook::get_string("name").len());', timeout=FIRST_CELL_TIMEOUT)
    assert reply["status"] == "ok", reply
    reply, outputs = run(kc, "print(scaled.shape); print(scaled.sum().item()); print(n);")
    assert reply["status"] == "ok", reply
    assert stdout_text(outputs).split() == ["[2,", "2]", "5.0", "3"], stdout_text(outputs)

    # State persists across Rust cells.
    reply, outputs = run(kc, '%%rust\ntunebook::set("again", &squares[3]);')
    assert reply["status"] == "ok", reply
    reply, outputs = run(kc, "again")
    assert result_text(outputs) == "16"

    # Completion inside a Rust cell comes from evcxr (rust-analyzer).
    code = "%%rust\nlet total = squares.ite"
    kc.complete(code, len(code))
    reply = kc.get_shell_msg(timeout=120)
    assert reply["msg_type"] == "complete_reply", reply
    matches = reply["content"]["matches"]
    assert any(m.startswith("iter") for m in matches), matches
    assert reply["content"]["cursor_end"] == len(code) and reply["content"]["cursor_start"] == len(code) - len("ite"), reply["content"]

    # A compile error names the cell line.
    reply, _ = run(kc, '%%rust\nlet a = 1;\nlet b: String = a;')
    assert reply["status"] == "error" and reply["ename"] == "RustCompileError", reply
    assert any("cell line 3" in line for line in reply["traceback"]), reply["traceback"]
    assert "mismatched types" in reply["evalue"], reply["evalue"]
    print(f"\nRust cells: first cell {first:.1f} s (starting evcxr), a later cell {later:.2f} s")


def test_a_panicking_or_interrupted_rust_cell_leaves_the_kernel_usable(kernel):
    km, kc = kernel
    if not rust_cells_built(kc):
        pytest.skip("this tunebook is built without the rust-cells feature; scripts/test-rust-cells runs this test")
    reply, _ = run(kc, '%%rust\ntunebook::set("kept", &7);')
    assert reply["status"] == "ok", reply
    reply, _ = run(kc, '%%rust\nlet v: Vec<i32> = Vec::new();\nlet _x = v[3];')
    assert reply["status"] == "error" and reply["ename"] == "RustPanic", reply
    assert "index out of bounds" in reply["evalue"], reply
    # An endless loop: the interrupt stops the Rust process, not the kernel.
    msg_id = kc.execute("%%rust\nloop { std::thread::sleep(std::time::Duration::from_millis(10)); }")
    time.sleep(3)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "Interrupted", reply["content"]
    # As after any failed cell, what is sent before the kernel is idle again is aborted.
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id and msg["content"].get("execution_state") == "idle":
            break
    # Rhai kept its variables; the next Rust cell starts a new process.
    reply, outputs = run(kc, "kept + 1")
    assert result_text(outputs) == "8", outputs
    reply, _ = run(kc, '%%rust\ntunebook::set("fresh", &1);', timeout=FIRST_CELL_TIMEOUT)
    assert reply["status"] == "ok", reply
