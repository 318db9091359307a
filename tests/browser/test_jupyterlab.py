"""Widgets in a real browser: JupyterLab (with jupyterlab_widgets, the
frontend of the widget protocol) in headless Chromium, driven by
Playwright. A slider renders; moving it changes `w.value` in the kernel and
re-runs an `interact` function; the Stop button ends a training cell, and
the cell goes on with the run so far; with JupyterLab's "save widget state"
setting on, saving the notebook stores the widgets' last state in it.
Screenshots go to $TUNEBOOK_SCREENSHOTS
(default: the test's scratch folder)."""

import json
import os
import re
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from tunebook_testing import TUNEBOOK, scratch

TIMEOUT_MS = 300_000  # a deadline against a hang on a busy machine, not a timing
expect.set_options(timeout=TIMEOUT_MS)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without the networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

CELLS = [
    'let layers = slider(#{ min: 0, max: 6, value: 2, description: "top layers" });\n'
    'interact(|v| `chose ${v.layers} layers`, #{ layers: layers });',
    "layers.value",
    'let model = load_model("minilm", #{ labels: ["rotten", "fresh"], pooling: "mean" });\n'
    'let data = load_dataset("rotten_tomatoes").clean().split(#{ val: 0.1, seed: 1 });\n'
    'let train = data.train.take(3000).tokenize(model, #{ max_len: 32 }).loader(#{ batch: 8, shuffle: true });\n'
    'model.freeze("embeddings");\n'
    'let run = fit(model, train, #{ epochs: 3, lr: 5e-5, controls: true });\n'
    'print(`after the run: ${run.steps} steps`);',
    "[run.interrupted, run.steps > 0, run.steps < 1125]",
]


@pytest.fixture()
def lab():
    """A JupyterLab server over a folder holding a notebook of CELLS, with
    the Tunebook kernel installed; yields (url, token, folder)."""
    root = scratch("jupyterlab-")
    prefix = scratch("kernelspec-")
    subprocess.run([TUNEBOOK, "kernel", "install", "--prefix", str(prefix)], check=True, capture_output=True)
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src} for i, src in enumerate(CELLS)],
          "metadata": {"kernelspec": {"name": "tunebook", "display_name": "Tunebook", "language": "rhai"}}, "nbformat": 4, "nbformat_minor": 5}
    (root / "widgets.ipynb").write_text(json.dumps(nb))
    # No "get notified about Jupyter news?" toast over the screenshots.
    settings = scratch("lab-settings-")
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    # The widget manager stores widget state in the notebook when it is saved (off by default).
    (settings / "@jupyter-widgets" / "jupyterlab-manager").mkdir(parents=True)
    (settings / "@jupyter-widgets" / "jupyterlab-manager" / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
    env = dict(os.environ, JUPYTER_PATH=str(prefix / "share" / "jupyter"), JUPYTER_PLATFORM_DIRS="1", JUPYTER_CONFIG_DIR=str(scratch("jupyter-config-")),
               JUPYTER_RUNTIME_DIR=str(scratch("jupyter-runtime-")), JUPYTERLAB_SETTINGS_DIR=str(settings))
    token = "tunebook-browser-test"
    log = open(root / "server.log", "w+")
    # Port 0: the server takes a free port and says which in its log.
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.port=0", "--ServerApp.ip=127.0.0.1",
                               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None and time.monotonic() < deadline:
            assert server.poll() is None, (root / "server.log").read_text()
            time.sleep(0.5)
            found = re.search(r"(http://127\.0\.0\.1:\d+)/", (root / "server.log").read_text())
            url = found and found.group(1)
        assert url, (root / "server.log").read_text()
        yield url, token, root
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def run_cell(page, index):
    """Runs cell `index` as a user does (click, Shift+Enter). A run asked for
    before JupyterLab has connected the kernel is dropped without a word, so
    it is asked again until the prompt shows that the cell was taken."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputPrompt")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        try:
            expect(prompt).not_to_have_text(re.compile(r"^\[ \]:"), timeout=15_000)
            return cell
        except AssertionError:
            continue
    raise AssertionError(f"cell {index} was never run")


def test_widgets_render_and_act_in_jupyterlab(lab):
    url, token, root = lab
    shots = os.environ.get("TUNEBOOK_SCREENSHOTS", str(root))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            act(page, url, token, shots)
            saved_state_is_the_last_one(page, root)
        except Exception:
            # What the page showed when it failed, and what the server logged.
            page.screenshot(path=os.path.join(shots, "failed.png"))
            print((root / "server.log").read_text()[-5000:])
            raise
        finally:
            browser.close()


def act(page, url, token, shots):
    page.goto(f"{url}/lab/tree/widgets.ipynb?token={token}")
    # The kernel is up when the toolbar says it is idle.
    expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible()
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)
    expect(page.locator(".jp-StatusBar-Widget", has_text="Tunebook (Rhai) | Idle")).to_have_count(1)

    # The slider renders, and interact shows the function's answer below it.
    first = run_cell(page, 0)
    expect(first.locator(".widget-hslider .noUi-handle")).to_be_visible()
    expect(first.locator(".widget-readout")).to_have_text("2")
    expect(first.locator(".widget-output")).to_contain_text("chose 2 layers")
    page.screenshot(path=os.path.join(shots, "1-slider.png"))
    assert "Error displaying widget" not in first.inner_text() and "Loading widget" not in first.inner_text()

    # Moving it (three steps right, as a user with the keyboard) re-runs the function.
    handle = first.locator(".noUi-handle")
    handle.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(first.locator(".widget-readout")).to_have_text("5")
    expect(first.locator(".widget-output")).to_contain_text("chose 5 layers")
    # ... and the kernel reads the value the slider shows.
    second = run_cell(page, 1)
    expect(second.locator(".jp-OutputArea-output")).to_have_text("5")
    page.screenshot(path=os.path.join(shots, "2-moved.png"))

    # A long training cell shows Stop and a readout; pressing Stop ends it and the cell goes on.
    third = run_cell(page, 2)
    stop = third.locator("button.widget-button")
    expect(stop).to_have_text(re.compile("Stop"))
    expect(third.locator(".widget-html")).to_contain_text("step ")
    page.screenshot(path=os.path.join(shots, "3-training.png"))
    stop.click()
    expect(stop).to_have_text(re.compile("Stopped"))
    expect(stop).to_be_disabled()
    expect(third.locator(".jp-OutputArea")).to_contain_text("after the run:")
    expect(third.locator(".widget-html")).to_contain_text("stopped after")
    third.locator(".widget-hbox").screenshot(path=os.path.join(shots, "4-stopped.png"))
    fourth = run_cell(page, 3)
    expect(fourth.locator(".jp-OutputArea-output")).to_have_text("[true, true, true]")
    page.screenshot(path=os.path.join(shots, "5-after.png"))


def saved_state_is_the_last_one(page, root):
    """Saves the notebook as a user does (Ctrl+S) and reads the widget state
    JupyterLab's widget manager wrote into it: the slider where it was
    moved, the Stop button as the run left it."""
    notebook = root / "widgets.ipynb"
    page.locator(".jp-Notebook").first.click()
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    state = {}
    while not state and time.monotonic() < deadline:
        time.sleep(0.5)
        saved = json.loads(notebook.read_text())
        state = saved["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    assert state, "JupyterLab saved no widget state"
    models = [(m["model_name"], m["state"]) for m in state.values()]
    assert any(name == "IntSliderModel" and m.get("value") == 5 and m.get("description") == "top layers" for name, m in models), models
    assert any(name == "ButtonModel" and m.get("description") == "Stopped" and m.get("disabled") is True for name, m in models), models
