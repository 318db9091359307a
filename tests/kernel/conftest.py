"""Installs the Tunebook kernel spec into a temporary prefix for the tests,
so that real Jupyter clients start the kernel built by cargo."""

import os
import pathlib
import subprocess
import tempfile

import pytest
from jupyter_client.manager import start_new_kernel

REPO = pathlib.Path(__file__).resolve().parents[2]
TUNEBOOK = os.environ.get("TUNEBOOK_BIN", str(REPO / "target" / "release" / "tunebook"))

_prefix = tempfile.mkdtemp(prefix="tunebook-kernelspec-")
subprocess.run([TUNEBOOK, "kernel", "install", "--prefix", _prefix], check=True, capture_output=True)
os.environ["JUPYTER_PATH"] = os.path.join(_prefix, "share", "jupyter")


def execute(kc, code, timeout=120, **kw):
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


@pytest.fixture()
def kernel():
    """A started Tunebook kernel and a blocking client, shut down afterwards."""
    km, kc = start_new_kernel(kernel_name="tunebook", startup_timeout=60)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
