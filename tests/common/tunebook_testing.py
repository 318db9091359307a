"""Helpers shared by the Python tests (the kernel's and the reference
libraries'): the repository, the binary under test, and running a cell
through a jupyter_client."""

import atexit
import os
import pathlib
import shutil
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
TUNEBOOK = os.environ.get("TUNEBOOK_BIN", str(REPO / "target" / "release" / "tunebook"))
# The program Jupyter starts: it serves the sockets and runs the cells in a
# `tunebook kernel-worker` child.
TUNEBOOK_KERNEL = str(pathlib.Path(TUNEBOOK).with_name("tunebook-kernel"))

# Every test's files go under one root, removed when the run ends: saved
# models are hundreds of megabytes each, and CI disks are small.
_SCRATCH = pathlib.Path(tempfile.mkdtemp(prefix="tunebook-tests-"))
atexit.register(shutil.rmtree, _SCRATCH, True)

# A MiniLM classifier on Rotten Tomatoes with loaders, for tests that train in a kernel (375 steps an epoch).
SETUP_TRAINING = """
let model = load_model("minilm", #{ labels: ["rotten", "fresh"], pooling: "mean" });
let data = load_dataset("rotten_tomatoes").clean().split(#{ val: 0.1, seed: 1 });
let train = data.train.take(3000).tokenize(model, #{ max_len: 32 }).loader(#{ batch: 8, shuffle: true });
let val = data.val.take(64).tokenize(model, #{ max_len: 32 }).loader(#{ batch: 64 });
model.freeze("embeddings");
"""


def scratch(prefix):
    """A new, empty folder for one test's files (removed with the run's
    scratch root, or earlier by the test with `shutil.rmtree`)."""
    return pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=_SCRATCH))


def run_script(script, prefix):
    """Runs a Rhai script with `tunebook run` on the CPU in a new scratch
    folder, WORK in the script naming that folder; returns (folder, stdout)
    and fails the test with its stderr if it fails."""
    import subprocess

    work = scratch(prefix)
    (work / "s.rhai").write_text(script.replace("WORK", str(work)))
    run = subprocess.run([TUNEBOOK, "run", str(work / "s.rhai"), "--device", "cpu"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return work, run.stdout


def execute(kc, code, timeout=300, **kw):
    """Executes code; returns (reply content, iopub messages of this request)."""
    msg_id = kc.execute(code, **kw)
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    outputs = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        outputs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return reply["content"], outputs


def result_text(outputs):
    """The text/plain of the request's execute_result, or None."""
    for m in outputs:
        if m["msg_type"] == "execute_result":
            return m["content"]["data"]["text/plain"]
    return None


def reference(module):
    """Imports a reference library (torch, transformers, peft). Under
    `scripts/test`, which installs them, a missing one is a failure, not a
    skip: a parity test that CI skips checks nothing."""
    import importlib

    import pytest

    try:
        return importlib.import_module(module)
    except ImportError as e:
        if os.environ.get("TUNEBOOK_REFERENCE_REQUIRED") == "1":
            pytest.fail(f"{module} is not installed, but scripts/test installs it (tests/python/requirements.txt): {e}")
        pytest.skip(f"{module} is not installed; scripts/test installs it from tests/python/requirements.txt", allow_module_level=True)


def worker_pid(kernel_pid):
    """The pid of the kernel's worker, the child process that runs its cells."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # ended meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        if int(stat[stat.rindex(")") + 2:].split()[1]) == kernel_pid:
            children.append(int(entry))
    assert len(children) == 1, f"the kernel {kernel_pid} has children {children}, not one worker"
    return children[0]
