"""`jupyter console` and `tunebook repl` as a person at a terminal uses them,
driven through a pseudo-terminal (pexpect)."""

import os
import re
import sys

import pexpect

from tunebook_testing import TUNEBOOK, scratch

JUPYTER = os.path.join(os.path.dirname(sys.executable), "jupyter")

TRAIN = (
    'let m = load_model("minilm", #{ labels: ["rotten", "fresh"] }); '
    'let d = load_dataset("rotten_tomatoes").take(96).split(#{ val: 32, seed: 1 }); '
    "let t = d.train.tokenize(m, #{ max_len: 16 }).loader(#{ batch: 16 }); "
    "let v = d.val.tokenize(m, #{ max_len: 16 }).loader(#{ batch: 32 }); "
    "let run = fit(m, t, v, #{ epochs: 2, lr: 5e-5 });"
)


def test_jupyter_console_shows_each_epoch_of_a_training_cell():
    # jupyter console ignores update_display_data: the epochs must come as text.
    child = pexpect.spawn(JUPYTER, ["console", "--kernel", "tunebook", "--simple-prompt", "--no-confirm-exit"], encoding="utf-8", timeout=180, dimensions=(50, 200), cwd=str(scratch("console-")))
    try:
        child.expect(r"In \[1\]: ")
        child.sendline(TRAIN)
        child.expect(r"epoch 1/2: train_loss [0-9.]+, val_loss [0-9.]+, val_accuracy")
        child.expect(r"epoch 2/2: train_loss")
        child.expect(r"done in \d+s")
        child.expect(r"In \[2\]: ")
        # An error inside a function shows its frames in the console too.
        child.sendline("fn inner(b) { b.nope() }")
        child.expect(r"In \[3\]: ")
        child.sendline("inner(1)")
        child.expect(r"In \[4\]: ")
        shown = re.sub(r"\x1b\[[0-9;]*m", "", child.before)
        assert "In [2], line 1, column 17, in fn inner" in shown and "In [3], line 1, column 1, at the top level" in shown, shown
        # Ctrl-D leaves, and the kernel goes with the console.
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_the_repl_completes_with_tab_from_the_types_it_knows():
    child = pexpect.spawn(TUNEBOOK, ["repl"], encoding="utf-8", timeout=60, dimensions=(40, 80), env={**os.environ, "HOME": str(scratch("repl-home-"))})
    try:
        child.expect(">> ")
        child.sendline("let numbers = [3, 1];")
        child.expect(">> ")
        # One candidate: Tab fills it in.
        child.send("numbers.pu\t")
        child.expect("numbers.push")
        child.send("(2);\r")
        child.expect(">> ")
        child.sendline("numbers.len()")
        child.expect(r"\r\n3\r\n")
        child.expect(">> ")
        # help() wraps its prose at the terminal's width (80 here); examples keep their lines.
        child.sendline('help("fit")')
        child.expect(">> ")
        prose = [l for l in child.before.split("\r\n")[1:] if l and not l.startswith(" ")]
        assert len(prose) > 3 and max(len(l) for l in prose) <= 80, child.before
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
