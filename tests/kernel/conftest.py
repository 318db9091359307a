"""Installs the Tunebook kernel spec into a temporary prefix for the tests,
so that real Jupyter clients start the kernel built by cargo."""

import os
import subprocess

import pytest
from jupyter_client.manager import start_new_kernel

from tunebook_testing import TUNEBOOK, scratch

_prefix = str(scratch("tunebook-kernelspec-"))
subprocess.run([TUNEBOOK, "kernel", "install", "--prefix", _prefix], check=True, capture_output=True)
os.environ["JUPYTER_PATH"] = os.path.join(_prefix, "share", "jupyter")


@pytest.fixture()
def kernel():
    """A started Tunebook kernel and a blocking client, shut down afterwards."""
    km, kc = start_new_kernel(kernel_name="tunebook", startup_timeout=60)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
