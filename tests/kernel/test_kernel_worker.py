"""The kernel process serves the sockets and a worker process runs the
cells: the kernel answers before libtorch has loaded, survives its worker's
death with an error that says what happened, and reports a worker that
cannot start."""

import json
import os
import pathlib
import signal
import time

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from tunebook_testing import TUNEBOOK_KERNEL, execute, result_text, scratch, worker_pid

TIMEOUT = 300  # seconds; a deadline against a hang on a busy machine, not a timing


def mapped_libraries(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {pathlib.Path(line.split()[-1]).name for line in f if "/" in line}


def test_the_kernel_process_has_no_libtorch_and_its_worker_runs_the_cells(kernel):
    km, kc = kernel
    pid = km.provisioner.pid
    reply, outputs = execute(kc, "let x = 40 + 2; x")
    assert reply["status"] == "ok" and result_text(outputs) == "42", reply
    assert not any(name.startswith("libtorch") for name in mapped_libraries(pid)), "the kernel process loaded libtorch"
    worker = worker_pid(pid)
    assert "libtorch_cpu.so" in mapped_libraries(worker)
    with open(f"/proc/{worker}/cmdline") as f:
        assert f.read().split("\0")[1] == "kernel-worker"


def test_a_worker_killed_in_a_cell_ends_it_with_an_error_and_the_next_cell_runs_in_a_new_one(kernel):
    km, kc = kernel
    reply, _ = execute(kc, "let kept = 7;")
    assert reply["status"] == "ok", reply
    worker = worker_pid(km.provisioner.pid)
    msg_id = kc.execute('print("looping"); let i = 0; loop { i += 1; }')
    # The worker prints once it runs the cell.
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream" and "looping" in msg["content"]["text"]:
            break
    os.kill(worker, signal.SIGKILL)  # what the system's out-of-memory killer does
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    content = reply["content"]
    assert content["status"] == "error" and content["ename"] == "KernelWorkerDied", content
    assert "was killed (signal 9" in content["evalue"] and "run those cells again" in content["evalue"], content["evalue"]
    # As after any failed cell, what is sent before the kernel is idle again is aborted.
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == msg_id and msg["content"].get("execution_state") == "idle":
            break
    # The kernel went on: a new worker, without the old session's variables.
    reply, outputs = execute(kc, "1 + 1")
    assert reply["status"] == "ok" and result_text(outputs) == "2", reply
    assert worker_pid(km.provisioner.pid) != worker
    reply, _ = execute(kc, "kept")
    assert reply["status"] == "error" and "kept" in reply["evalue"], reply


def test_an_interrupt_that_reaches_a_worker_still_starting_stops_the_cell(kernel):
    km, kc = kernel
    worker = worker_pid(km.provisioner.pid)
    # Frozen, the worker reads the cell and the interrupt only when it
    # resumes, as one that is still loading libtorch does.
    os.kill(worker, signal.SIGSTOP)
    try:
        msg_id = kc.execute("let i = 0; loop { i += 1; }")
        while True:
            msg = kc.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
                break
        km.interrupt_kernel()
        time.sleep(0.2)
    finally:
        os.kill(worker, signal.SIGCONT)
    # A lost interrupt leaves the loop running: no reply at all.
    reply = kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "Interrupted", reply["content"]
    time.sleep(0.3)  # past the abort window of a failed cell
    reply, outputs = execute(kc, "1 + 1")
    assert reply["status"] == "ok" and result_text(outputs) == "2", reply


def test_a_worker_that_cannot_start_says_why_on_each_cell():
    # CUDA asked for, on a machine where the worker cannot see any.
    spec_dir = scratch("tunebook-badspec-") / "tunebook-cuda"
    spec_dir.mkdir()
    spec = {"argv": [TUNEBOOK_KERNEL, "--device", "cuda", "--connection-file", "{connection_file}"],
            "env": {"CUDA_VISIBLE_DEVICES": ""},
            "display_name": "Tunebook (CUDA)", "language": "rhai", "interrupt_mode": "message"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    km = KernelManager(kernel_name="tunebook-cuda", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]))
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        reply, _ = execute(kc, "1 + 1")
        assert reply["status"] == "error" and reply["ename"] == "KernelWorkerDied", reply
        assert "could not start the interpreter" in reply["evalue"] and "CUDA was asked for but is not available" in reply["evalue"], reply
        # Help while typing answers at once, without starting a worker again.
        kc.complete("load_mo", 7)
        assert kc.get_shell_msg(timeout=TIMEOUT)["content"]["matches"] == []
        # Said again on the next cell, and the kernel still answers.
        reply, _ = execute(kc, "2 + 2")
        assert reply["status"] == "error" and "CUDA was asked for" in reply["evalue"], reply
        assert km.is_alive()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
