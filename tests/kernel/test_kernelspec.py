"""`tunebook kernel install` puts the spec where Jupyter finds it."""

import json
import os
import pathlib
import subprocess
import sys

from tunebook_testing import TUNEBOOK, TUNEBOOK_KERNEL, scratch


def test_installed_kernel_is_listed_by_jupyter():
    prefix = str(scratch("tunebook-install-"))
    out = subprocess.run([TUNEBOOK, "kernel", "install", "--prefix", prefix], check=True, capture_output=True, text=True)
    assert "installed the tunebook kernel spec" in out.stdout
    env = dict(os.environ, JUPYTER_PATH=os.path.join(prefix, "share", "jupyter"))
    listed = subprocess.run([sys.executable, "-m", "jupyter_client.kernelspecapp", "list", "--json"], check=True, capture_output=True, text=True, env=env)
    specs = json.loads(listed.stdout)["kernelspecs"]
    assert "tunebook" in specs
    spec = specs["tunebook"]["spec"]
    assert spec["display_name"] == "Tunebook (Rhai)" and spec["language"] == "rhai"
    assert spec["interrupt_mode"] == "message"
    # The kernel program beside tunebook: it answers at once, without libtorch.
    assert pathlib.Path(spec["argv"][0]).samefile(TUNEBOOK_KERNEL)
    assert spec["argv"][1:] == ["--connection-file", "{connection_file}"]
    resources = pathlib.Path(specs["tunebook"]["resource_dir"])
    assert (resources / "logo-32x32.png").read_bytes().startswith(b"\x89PNG")
    assert (resources / "logo-64x64.png").read_bytes().startswith(b"\x89PNG")


def test_spec_files_are_never_writable_by_others_even_with_umask_0():
    prefix = str(scratch("tunebook-install-"))
    subprocess.run([TUNEBOOK, "kernel", "install", "--prefix", prefix], check=True, capture_output=True, preexec_fn=lambda: os.umask(0))
    spec_dir = pathlib.Path(prefix, "share", "jupyter", "kernels", "tunebook")
    for name in ("kernel.json", "logo-32x32.png", "logo-64x64.png"):
        mode = (spec_dir / name).stat().st_mode & 0o777
        assert mode == 0o644, f"{name} has mode {oct(mode)}"
