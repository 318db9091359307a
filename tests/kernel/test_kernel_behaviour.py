"""What jupyter_kernel_test does not cover, with a real jupyter_client:
interrupts that keep state, SIGINT, restart, live training displays, bad
signatures and input()."""

import re
import base64
import os
import struct
import signal
import time

from jupyter_client.session import Session

from tunebook_testing import SETUP_TRAINING, execute as run, result_text

TIMEOUT = 300  # seconds; a deadline against a hang on a busy machine, not a timing



def stdout_text(outputs):
    return "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def start_then(kc, code, after_seconds, action):
    """Starts a cell, waits until it has run a while, acts, and returns the reply and outputs."""
    msg_id = kc.execute(code)
    deadline = time.time() + TIMEOUT
    outputs = []
    acted = False
    started = time.time()
    while time.time() < deadline:
        if not acted and time.time() - started > after_seconds:
            action()
            acted = True
            acted_at = time.time()
        try:
            msg = kc.get_iopub_msg(timeout=0.2)
        except Exception:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        outputs.append(msg)
        if acted and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            reply = kc.get_shell_msg(timeout=10)
            return reply["content"], outputs, time.time() - acted_at
    raise AssertionError("the cell did not finish after the interrupt")


def test_interrupt_during_training_keeps_model_run_and_variables(kernel):
    km, kc = kernel
    reply, _ = run(kc, SETUP_TRAINING + "let kept = 41;")
    assert reply["status"] == "ok", reply
    reply, outputs, took = start_then(kc, "let run = fit(model, train, val, #{ epochs: 3, lr: 5e-5 });", 6, km.interrupt_kernel)
    assert reply["status"] == "error" and reply["ename"] == "Interrupted", reply
    assert "interrupt" not in reply["evalue"].lower() and "every variable keeps its value" in reply["evalue"], reply["evalue"]
    # Every variable survives, and the run records the interruption, which
    # took effect before the run's end (3 epochs of 375 steps).
    reply, outputs = run(kc, "[kept + 1, run.interrupted, run.steps > 0, run.steps < 1125, model.labels.len()]")
    assert reply["status"] == "ok", reply
    assert result_text(outputs) == "[42, true, true, true, 2]"
    # The model still works: evaluate it and train a little more.
    reply, outputs = run(kc, "let again = fit(model, train, #{ epochs: 1, max_steps: 2 }); again.steps")
    assert reply["status"] == "ok", reply
    assert result_text(outputs) == "2"


def test_sigint_stops_a_script_loop_and_keeps_its_variables(kernel):
    km, kc = kernel
    reply, _, _ = start_then(kc, "let i = 0; loop { i += 1; }", 1, lambda: os.kill(km.provisioner.pid, signal.SIGINT))
    assert reply["status"] == "error" and reply["ename"] == "Interrupted", reply
    reply, outputs = run(kc, "i > 0")
    assert result_text(outputs) == "true"


def test_restart_gives_a_fresh_scope(kernel):
    km, kc = kernel
    run(kc, "let x = 5;")
    reply, outputs = run(kc, "x")
    assert result_text(outputs) == "5"
    km.restart_kernel(now=False)
    kc.wait_for_ready(timeout=60)
    reply, _ = run(kc, "x")
    assert reply["status"] == "error" and "x" in reply["evalue"], reply


def test_training_shows_one_display_updated_in_place(kernel):
    _, kc = kernel
    reply, _ = run(kc, SETUP_TRAINING)
    assert reply["status"] == "ok", reply
    reply, outputs = run(kc, "let run = fit(model, train, val, #{ epochs: 2, max_steps: 40, lr: 5e-5 });")
    assert reply["status"] == "ok", reply
    displays = [m for m in outputs if m["msg_type"] == "display_data"]
    updates = [m for m in outputs if m["msg_type"] == "update_display_data"]
    assert len(displays) == 1, "a run shows one display"
    display_id = displays[0]["content"]["transient"]["display_id"]
    assert len(updates) >= 2
    assert all(u["content"]["transient"]["display_id"] == display_id for u in updates)
    final = updates[-1]["content"]["data"]["text/plain"]
    assert "done" in final and "samples/s" in final, final
    html = updates[-1]["content"]["data"]["text/html"]
    # The chart as an image (JupyterLab strips inline SVG from untrusted notebooks).
    assert '<img alt="training curves"' in html and "data:image/svg+xml;base64," in html, "the live display has no chart"
    # One bar: the HTML progress element, not an ASCII bar beside it.
    assert "<progress" in html and "[#" not in html and "#]" not in html, html
    # The run's record arrives as text output as it happens, so that every
    # client (jupyter console ignores display updates) shows it and a saved
    # notebook keeps it: one line per epoch, F1 beside accuracy.
    kinds = [m["msg_type"] for m in outputs]
    streamed = [(i, m["content"]["text"]) for i, m in enumerate(outputs) if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"]
    text = "".join(t for _, t in streamed)
    assert re.search(r"^training [\d,]+ of [\d,]+ parameters", text, re.M), text
    epochs = [i for i, t in streamed if "epoch 1/2: train_loss" in t or "epoch 2/2: train_loss" in t]
    assert epochs, text
    assert "val_accuracy" in text and "val_f1" in text and re.search(r"^done in \d+s", text, re.M), text
    # The first epoch's line came before the run ended: display updates follow it.
    assert "update_display_data" in kinds[epochs[0] + 1:], kinds
    # Progress updates never show lr 0.00e0 (the first warmup step uses 0).
    assert not any("0.00e0" in u["content"]["data"]["text/plain"] for u in updates)
    # No carriage-return progress bars in the notebook.
    assert not any("\r" in m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")


def test_predictions_show_as_a_table_with_rounded_probabilities(kernel):
    _, kc = kernel
    reply, outputs = run(kc, 'let m = load_model("minilm", #{ labels: ["rotten", "fresh"] });\npredict(m, ["A warm, funny film.", "Dull."])')
    assert reply["status"] == "ok", reply
    result = [o for o in outputs if o["msg_type"] == "execute_result"][0]["content"]["data"]
    html, plain = result["text/html"], result["text/plain"]
    assert "<table>" in html and '<th style="text-align:right">p(fresh)</th>' in html and '<td style="text-align:left">A warm, funny film.</td>' in html, html
    # One probability column per class (in the name order of Rhai's maps).
    assert plain.splitlines()[0].split() == ["text", "label", "score", "p(fresh)", "p(rotten)"], plain
    # Probabilities are rounded for reading (4 decimals); the values keep full precision.
    cells = [c for c in plain.splitlines()[2].split() if c.startswith("0.")]
    assert cells and all(len(c) <= 6 for c in cells), plain
    reply, outputs = run(kc, 'predict(m, ["Dull."])[0].score.to_string().len() > 8')
    assert result_text(outputs) == "true"


def png_size(b64):
    data = base64.b64decode(b64)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def chart_messages(outputs):
    return [m for m in outputs if m["msg_type"] in ("display_data", "execute_result") and "image/png" in m["content"]["data"]]


def test_charts_show_once_as_svg_and_png_and_again_from_a_variable(kernel):
    _, kc = kernel
    reply, _ = run(kc, SETUP_TRAINING)
    assert reply["status"] == "ok", reply
    # A cell that ends in a plot call shows the chart once, not twice.
    reply, outputs = run(kc, "let run = fit(model, train, val, #{ epochs: 1, max_steps: 3 });\nplot(run)")
    assert reply["status"] == "ok", reply
    charts = chart_messages(outputs)
    assert [m["msg_type"] for m in charts] == ["display_data"], [m["msg_type"] for m in outputs]
    data = charts[0]["content"]["data"]
    assert data["image/svg+xml"].startswith("<svg") and "validation accuracy" in data["image/svg+xml"]
    assert png_size(data["image/png"]) == (600, 300)
    assert "Chart: training curves" in data["text/plain"]
    # A chart kept in a variable shows when a later cell ends with it, at its new size.
    reply, outputs = run(kc, "let c = plot_lr(run);")
    assert len(chart_messages(outputs)) == 1
    reply, outputs = run(kc, "c.resize(500, 250).title(\"Schedule\")")
    charts = chart_messages(outputs)
    assert [m["msg_type"] for m in charts] == ["execute_result"]
    assert png_size(charts[0]["content"]["data"]["image/png"]) == (500, 250)
    assert "Schedule" in charts[0]["content"]["data"]["image/svg+xml"]
    reply, outputs = run(kc, "c")
    assert [m["msg_type"] for m in chart_messages(outputs)] == ["execute_result"]


def test_messages_with_bad_signatures_are_dropped(kernel):
    _, kc = kernel
    forged = Session(key=b"not-the-key", username="mallory")
    msg = forged.msg("execute_request", {"code": "let forged = 1;", "silent": False, "store_history": True,
                                          "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
    forged.send(kc.shell_channel.socket, msg)
    time.sleep(1.0)
    # No reply came to the forged request, and nothing ran.
    assert not kc.shell_channel.msg_ready()
    reply, _ = run(kc, "forged")
    assert reply["status"] == "error", "the forged cell was executed"
    reply, outputs = run(kc, "1 + 1")
    assert result_text(outputs) == "2"


def test_input_asks_the_frontend(kernel):
    _, kc = kernel
    msg_id = kc.execute('let name = input("your name? "); print("hello " + name);', allow_stdin=True)
    req = kc.get_stdin_msg(timeout=30)
    assert req["msg_type"] == "input_request" and req["content"]["prompt"] == "your name? "
    kc.input("Ada")
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok", reply["content"]
    reply, outputs = run(kc, "name")
    assert result_text(outputs) == '"Ada"'


def test_input_without_stdin_is_a_clear_error(kernel):
    _, kc = kernel
    reply, _ = run(kc, 'input("x")', allow_stdin=False)
    assert reply["status"] == "error" and "does not accept input" in reply["evalue"]


def strip_ansi(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_a_failed_cell_aborts_the_queued_ones(kernel):
    _, kc = kernel
    first = kc.execute('throw "first fails"')
    second = kc.execute("let ran = true;")
    replies = {}
    while len(replies) < 2:
        r = kc.get_shell_msg(timeout=30)
        replies[r["parent_header"]["msg_id"]] = r["content"]
    assert replies[first]["status"] == "error"
    assert replies[second]["status"] == "aborted"
    reply, _ = run(kc, "ran")
    assert reply["status"] == "error"


def test_errors_show_the_failing_line(kernel):
    _, kc = kernel
    reply, outputs = run(kc, 'let a = 1;\nlet m = load_model("no-such-model");')
    assert reply["status"] == "error"
    tb = strip_ansi("\n".join(reply["traceback"]))
    assert re.search(r"In \[\d+\], line 2, column 9, at the top level\n    let m = load_model", tb), tb
    assert "no model named 'no-such-model'" in reply["evalue"]


def test_an_error_inside_functions_shows_each_frame_with_its_own_cell_and_line(kernel):
    _, kc = kernel
    reply, _ = run(kc, "fn inner(b) {\n    let y = b * 2;\n    y.nope()\n}")
    assert reply["status"] == "ok"
    defined = reply["execution_count"]
    reply, _ = run(kc, "fn outer(a) {\n    inner(a) + 1\n}")
    assert reply["status"] == "ok"
    reply, outputs = run(kc, "let q = 1;\nlet w = 2;\nouter(q)")
    assert reply["status"] == "error"
    calling = reply["execution_count"]
    tb = strip_ansi("\n".join(reply["traceback"]))
    # Python's order: the cell that ran first, the failing call last, each
    # frame with the line of its own cell and a caret under the column.
    expected = [
        f"In [{calling}], line 3, column 1, at the top level\n    outer(q)\n    ^",
        f"In [{defined + 1}], line 2, column 5, in fn outer\n        inner(a) + 1\n        ^",
        f"In [{defined}], line 3, column 7, in fn inner\n        y.nope()\n          ^",
    ]
    at = [tb.find(e) for e in expected]
    assert all(i >= 0 for i in at) and at == sorted(at), tb
    assert tb.startswith("Traceback (innermost last):"), tb
    assert "nope" in reply["evalue"] and "in function" not in reply["evalue"], reply["evalue"]
    # The error output on iopub carries the same traceback.
    errors = [m["content"] for m in outputs if m["msg_type"] == "error"]
    assert errors and errors[0]["traceback"] == reply["traceback"]


def test_a_cell_variable_used_inside_a_function_says_functions_see_only_their_parameters(kernel):
    _, kc = kernel
    run(kc, "let train = 5;\nfn uses_train() { train + 1 }")
    reply, _ = run(kc, "uses_train()")
    assert reply["status"] == "error"
    assert "train" in reply["evalue"] and "pass train in as an argument" in reply["evalue"] and "closure" in reply["evalue"], reply["evalue"]


def test_malformed_frames_and_unknown_requests_leave_the_kernel_responsive(kernel):
    _, kc = kernel
    sock = kc.shell_channel.socket
    # Raw junk: no delimiter, too few frames, bad JSON, binary garbage.
    for frames in ([b"junk"], [b"<IDS|MSG>", b"sig"], [b"<IDS|MSG>", b"", b"{", b"{}", b"{}", b"{}"], [b"\xff\xfe" * 1000]):
        sock.send_multipart(frames)
    # A properly signed request of a type nobody knows gets an error reply.
    msg = kc.session.msg("frobnicate_request", {})
    kc.session.send(sock, msg)
    reply = kc.get_shell_msg(timeout=10)
    assert reply["msg_type"] == "frobnicate_reply" and reply["content"]["status"] == "error", reply
    reply, outputs = run(kc, "40 + 2")
    assert result_text(outputs) == "42"


def test_generation_streams_into_the_cell_and_an_interrupt_keeps_what_it_wrote(kernel):
    km, kc = kernel
    code = 'let lm = load_model("smollm2");\nlet answer = generate(lm, [#{ role: "user", content: "What is the capital of France?" }], #{ max_new_tokens: 16 });'
    reply, outputs = run(kc, code, timeout=TIMEOUT)
    assert reply["status"] == "ok", reply
    pieces = [m["content"]["text"] for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"]
    # Token by token, not one block at the end; the same text as the value.
    assert len(pieces) >= 3, pieces
    streamed = "".join(pieces)
    assert "Paris" in streamed, streamed
    reply, outputs = run(kc, "answer.len()")
    assert int(result_text(outputs)) == len(streamed.rstrip("\n").encode()), (streamed, result_text(outputs))
    # An interrupt stops at the next token; what was written stays in the variable.
    reply, outputs, _ = start_then(kc, 'let story = generate(lm, "Once upon a time", #{ max_new_tokens: 4000 });', 4, km.interrupt_kernel)
    assert reply["status"] == "error" and reply["ename"] == "Interrupted", reply
    pieces = [m for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"]
    assert 0 < len(pieces) < 1000, len(pieces)
    reply, outputs = run(kc, "story.len() > 0")
    assert result_text(outputs) == "true"


def test_summaries_maps_and_multi_line_text_display_as_people_read_them(kernel):
    _, kc = kernel
    reply, outputs = run(kc, 'let m = load_model("minilm", #{ labels: 2 });\nm.freeze("embeddings");\nm.summary()')
    assert reply["status"] == "ok", reply
    data = [o for o in outputs if o["msg_type"] == "execute_result"][0]["content"]["data"]
    # A table, not a quoted string full of \n.
    assert "<table>" in data["text/html"] and '<td style="text-align:left">embeddings</td>' in data["text/html"], data["text/html"]
    assert '<td style="text-align:right">11,918,592</td>' in data["text/html"], data["text/html"]
    plain = data["text/plain"]
    assert not plain.startswith('"') and "\\n" not in plain and plain.splitlines()[1].split() == ["module", "trainable", "frozen"], plain
    # print() of the summary is the same aligned text.
    reply, outputs = run(kc, "print(m.summary());")
    printed = "".join(o["content"]["text"] for o in outputs if o["msg_type"] == "stream")
    assert printed.strip() == plain.strip(), printed
    # Several lines of text read as text; one line stays quoted.
    reply, outputs = run(kc, '"first line\\nsecond line"')
    assert result_text(outputs) == "first line\nsecond line"
    reply, outputs = run(kc, '"one line"')
    assert result_text(outputs) == '"one line"'
    # A map of results: names and values, numbers rounded and right-aligned.
    reply, outputs = run(kc, '#{ loss: 0.123456789, accuracy: 0.8, rows: 12000, name: "a long name" }')
    data = [o for o in outputs if o["msg_type"] == "execute_result"][0]["content"]["data"]
    assert data["text/plain"].splitlines()[0].split() == ["name", "value"], data["text/plain"]
    assert "0.1235" in data["text/plain"] and "12,000" in data["text/plain"], data["text/plain"]
    assert '<td style="text-align:right">0.1235</td>' in data["text/html"] and '<td style="text-align:left">a long name</td>' in data["text/html"], data["text/html"]
    # Long texts in a table are cut with an ellipsis (the whole text is the tooltip).
    reply, outputs = run(kc, 'table([#{ text: "word ".repeat(40), score: 0.5 }])'.replace('"word ".repeat(40)', '"' + "word " * 40 + '"'))
    html = [o for o in outputs if o["msg_type"] == "execute_result"][0]["content"]["data"]["text/html"]
    assert "…</td>" in html and 'title="word word' in html, html


def complete(kc, code, cursor=None):
    msg_id = kc.complete(code, len(code) if cursor is None else cursor)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    return reply["content"]


def inspect(kc, code, cursor=None):
    kc.inspect(code, len(code) if cursor is None else cursor)
    return kc.get_shell_msg(timeout=30)["content"]


def test_completion_offers_the_methods_of_the_inferred_type_with_their_signatures(kernel):
    _, kc = kernel
    reply, _ = run(kc, 'let arr = [3, 1, 2];\nlet data = load_dataset("rotten_tomatoes").split(#{ val: 0.1, seed: 1 });')
    assert reply["status"] == "ok", reply
    # An array variable: array methods, and none of the API's.
    c = complete(kc, "arr.")
    assert {"len", "push", "sort", "map", "filter"} <= set(c["matches"]), c["matches"]
    assert not {"tokenize", "freeze", "+"} & set(c["matches"]), c["matches"]
    # A string literal: string methods only.
    c = complete(kc, '"text".')
    assert {"len", "to_upper", "contains", "split"} <= set(c["matches"]) and "push" not in c["matches"] and "tokenize" not in c["matches"], c["matches"]
    # A chain: the map's field, then a method's return type (take gives a Dataset).
    c = complete(kc, "data.train.take(3).")
    assert {"tokenize", "split", "shuffle", "labels"} <= set(c["matches"]), c["matches"]
    assert not {"push", "freeze", "+"} & set(c["matches"]), c["matches"]
    # Each match carries its type and signature, as ipykernel's do.
    types = {t["text"]: t for t in c["metadata"]["_jupyter_types_experimental"]}
    assert types["tokenize"]["type"] == "method" and types["tokenize"]["signature"].startswith("data.tokenize(model"), types["tokenize"]
    c = complete(kc, "data.")
    assert {"train", "val"} <= set(c["matches"]), c["matches"]
    c = complete(kc, "arr.so")
    assert "sort" in c["matches"] and all(m.startswith("so") for m in c["matches"]) and c["cursor_start"] == 4, c


def test_inspection_finds_the_call_around_the_cursor_and_resolves_methods_by_type(kernel):
    _, kc = kernel
    run(kc, "let arr = [1, 2];")
    # Shift-Tab inside a call: the function being called.
    for code in ["fit(", "fit(model, "]:
        r = inspect(kc, code)
        assert r["found"] and r["data"]["text/plain"].startswith("fit("), (code, r)
    # arr.len() is the array's len, not the dataset's.
    r = inspect(kc, "arr.len()", cursor=6)
    assert r["found"] and "Dataset" not in r["data"]["text/plain"] and "array" in r["data"]["text/plain"], r
    r = inspect(kc, 'load_dataset("rotten_tomatoes").len()', cursor=34)
    assert r["found"] and "rows" in r["data"]["text/plain"].lower(), r


def test_the_kernel_and_every_committed_notebook_name_a_lexer(kernel):
    _, kc = kernel
    kc.kernel_info()
    info = kc.get_shell_msg(timeout=30)["content"]["language_info"]
    assert info["pygments_lexer"] == "rust" and info["codemirror_mode"] == "rust", info
