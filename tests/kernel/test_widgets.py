"""Jupyter widgets on the wire, with jupyter_client playing the frontend
(the messages JupyterLab's widget manager sends and expects, as
docs/widgets-protocol.md records them from ipywidgets 8.1 and
jupyterlab_widgets 3.0): a widget opens its layout and style models first,
then itself, with protocol 2.1.0 and ipywidgets' full state; its view is
the cell's result; the frontend's changes reach `w.value` at once, also
while a cell runs; the kernel's changes go out as updates; handlers run
when the frontend acts, also inside a running cell (between its statements
and between training steps); `request_state` is answered under its own id."""

import time

from tunebook_testing import SETUP_TRAINING, execute, result_text

TIMEOUT = 300  # seconds; a deadline against a hang on a busy machine, not a timing
VIEW = "application/vnd.jupyter.widget-view+json"


def run_collecting(kc, code):
    """Runs a cell; its reply and every iopub message it caused, in order."""
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    seen = []
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return reply["content"], seen


def send_comm(kc, comm_id, data, others=None):
    """Sends a comm message as a frontend does; returns its id and the iopub
    messages under it, up to the kernel's idle for it. Messages under other
    parents (a running cell's) go to `others` when it is given."""
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    kc.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        m = kc.get_iopub_msg(timeout=TIMEOUT)
        if m["parent_header"].get("msg_id") == msg_id:
            seen.append(m)
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                return msg_id, seen
        elif others is not None:
            others.append(m)
    raise AssertionError("no idle for the comm message")


def opened(seen):
    return [m for m in seen if m["msg_type"] == "comm_open"]


def wait_for(kc, cell, seen, done):
    """Collects the cell's iopub messages into `seen` until `done(message)`
    (which may be in `seen` already)."""
    already = next((m for m in seen if done(m)), None)
    if already is not None:
        return already
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        m = kc.get_iopub_msg(timeout=TIMEOUT)
        if m["parent_header"].get("msg_id") == cell:
            seen.append(m)
            if done(m):
                return m
    raise AssertionError(f"the cell did not get there: {[m['msg_type'] for m in seen]}")


def finish(kc, cell, seen):
    """The cell's reply, once its iopub messages up to idle are in `seen`."""
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == cell
    wait_for(kc, cell, seen, lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "idle")
    return reply["content"]


def streamed(seen, name):
    return "".join(m["content"]["text"] for m in seen if m["msg_type"] == "stream" and m["content"]["name"] == name)


def test_a_slider_opens_its_models_in_order_and_shows_as_the_cells_result(kernel):
    _, kc = kernel
    reply, seen = run_collecting(kc, 'let s = slider(#{ min: 0, max: 6, value: 2, description: "top layers" });\ns')
    assert reply["status"] == "ok", reply
    opens = opened(seen)
    models = [m["content"]["data"]["state"]["_model_name"] for m in opens]
    assert models == ["LayoutModel", "SliderStyleModel", "IntSliderModel"], models
    for m in opens:
        assert m["content"]["target_name"] == "jupyter.widget"
        assert m["metadata"] == {"version": "2.1.0"}, m["metadata"]
        assert m["content"]["data"]["buffer_paths"] == []
    layout, style, widget = (m["content"] for m in opens)
    state = widget["data"]["state"]
    assert state["layout"] == "IPY_MODEL_" + layout["comm_id"] and state["style"] == "IPY_MODEL_" + style["comm_id"]
    # ipywidgets 8.1's IntSlider state, key for key, with the script's settings.
    assert state == {
        "_dom_classes": [], "_model_module": "@jupyter-widgets/controls", "_model_module_version": "2.0.0",
        "_model_name": "IntSliderModel", "_view_count": None, "_view_module": "@jupyter-widgets/controls",
        "_view_module_version": "2.0.0", "_view_name": "IntSliderView", "behavior": "drag-tap",
        "continuous_update": True, "description": "top layers", "description_allow_html": False, "disabled": False,
        "layout": state["layout"], "max": 6, "min": 0, "orientation": "horizontal", "readout": True,
        "readout_format": "d", "step": 1, "style": state["style"], "tabbable": None, "tooltip": None, "value": 2,
    }
    assert len(layout["data"]["state"]) == 46 and layout["data"]["state"]["width"] is None
    result = next(m for m in seen if m["msg_type"] == "execute_result")
    # The models open before the view that needs them.
    assert seen.index(result) > seen.index(opens[-1])
    data = result["content"]["data"]
    assert data[VIEW] == {"version_major": 2, "version_minor": 0, "model_id": widget["comm_id"]}
    assert data["text/plain"] == "IntSlider(value=2, description='top layers', max=6)"
    info = kc.comm_info("jupyter.widget")
    comms = kc.get_shell_msg(timeout=TIMEOUT)["content"]["comms"]
    assert set(comms) == {layout["comm_id"], style["comm_id"], widget["comm_id"]}, (info, comms)


def test_the_frontends_changes_reach_the_script_and_the_scripts_changes_reach_the_frontend(kernel):
    _, kc = kernel
    _, seen = run_collecting(kc, 'let s = slider(#{ max: 10 }); let d = dropdown(["full", "lora", "head"]); hbox([s, d])')
    slider_id, dropdown_id = (m["content"]["comm_id"] for m in opened(seen) if m["content"]["data"]["state"]["_model_name"] in ("IntSliderModel", "DropdownModel"))
    box = next(m for m in opened(seen) if m["content"]["data"]["state"]["_model_name"] == "HBoxModel")
    assert box["content"]["data"]["state"]["children"] == ["IPY_MODEL_" + slider_id, "IPY_MODEL_" + dropdown_id]
    # What JupyterLab sends when the slider is dragged and an option chosen: busy, idle, nothing else.
    for comm_id, state in ((slider_id, {"value": 7}), (dropdown_id, {"index": 2})):
        _, answer = send_comm(kc, comm_id, {"method": "update", "state": state, "buffer_paths": []})
        assert [m["msg_type"] for m in answer] == ["status", "status"], answer
    reply, outputs = execute(kc, "`${s.value} ${d.value}`")
    assert reply["status"] == "ok" and result_text(outputs) == '"7 head"', (reply, outputs)
    reply, seen = run_collecting(kc, 's.value = 3; d.value = "lora";')
    assert reply["status"] == "ok", reply
    updates = [m["content"] for m in seen if m["msg_type"] == "comm_msg"]
    assert updates == [
        {"comm_id": slider_id, "data": {"method": "update", "state": {"value": 3}, "buffer_paths": []}},
        {"comm_id": dropdown_id, "data": {"method": "update", "state": {"index": 1}, "buffer_paths": []}},
    ], updates
    # A page reload asks each model for its state: the answer names the request as its parent.
    request, answer = send_comm(kc, slider_id, {"method": "request_state"})
    state = [m for m in answer if m["msg_type"] == "comm_msg"]
    assert len(state) == 1 and state[0]["parent_header"]["msg_id"] == request
    assert state[0]["content"]["data"]["method"] == "update" and state[0]["content"]["data"]["state"]["value"] == 3
    assert state[0]["content"]["data"]["state"]["_model_name"] == "IntSliderModel"


def test_handlers_run_when_the_frontend_acts_and_a_failing_one_says_so(kernel):
    _, kc = kernel
    _, seen = run_collecting(kc, 'let clicks = 0; let b = button("Count"); b.on_click(|w| clicks += 1);\n'
                                 'let s = slider(#{ max: 9 }); s.on_change(|v| print(`moved to ${v}`));\n'
                                 'let bad = button("Bad"); bad.on_click(|w| clicks.nope());\nvbox([b, s, bad])')
    ids = {m["content"]["data"]["state"].get("description"): m["content"]["comm_id"] for m in opened(seen) if m["content"]["data"]["state"]["_model_name"] in ("ButtonModel", "IntSliderModel")}
    # Sent back to back, as a user clicking fast; what they print is collected below.
    sent = []
    for comm_id, data in [(ids["Count"], {"method": "custom", "content": {"event": "click"}})] * 2 + [
        (ids[""], {"method": "update", "state": {"value": 4}, "buffer_paths": []}),
        (ids["Bad"], {"method": "custom", "content": {"event": "click"}}),
    ]:
        msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        kc.shell_channel.send(msg)
        sent.append(msg["header"]["msg_id"])
    # The handlers run in the worker as the messages arrive; the next cell queues behind them.
    cell = kc.execute("clicks")
    streams, result = [], None
    while True:
        m = kc.get_iopub_msg(timeout=TIMEOUT)
        if m["msg_type"] == "stream":
            streams.append((m["parent_header"].get("msg_id"), m["content"]["name"], m["content"]["text"]))
        if m["parent_header"].get("msg_id") == cell and m["msg_type"] == "execute_result":
            result = m["content"]["data"]["text/plain"]
        if m["parent_header"].get("msg_id") == cell and m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            break
    assert result == "2", (result, streams)
    assert any(name == "stdout" and "moved to 4" in text for _, name, text in streams), streams
    assert any(name == "stderr" and "a widget handler" in text and "failed" in text for _, name, text in streams), streams
    # Under the comm messages that caused them, as ipykernel does, not under the cell that happened to run next.
    assert all(parent in sent for parent, _, _ in streams), (sent, streams)


def test_bad_widget_use_says_what_to_do(kernel):
    _, kc = kernel
    for code, expected in [
        ("slider(#{ maxx: 3 })", "slider: unknown option 'maxx'. Did you mean 'max'?"),
        ("slider(#{ min: 5, max: 1 })", "slider: min (5) is above max (1)"),
        ('let d = dropdown(["a", "b"]); d.value = "c";', "'c' is not one of this dropdown's options: a, b"),
        ('slider(#{}).on_click(|w| 1)', "on_click is for buttons; this is an IntSlider"),
        ('let s = slider(#{}); s.value = "x";', "an IntSlider takes an integer, got string"),
    ]:
        reply, _ = execute(kc, code)
        assert reply["status"] == "error" and expected in reply["evalue"], (code, reply.get("evalue"))


def widget_states(seen):
    """The state each comm opened in `seen` started with, by comm id."""
    return {m["content"]["comm_id"]: m["content"]["data"]["state"] for m in opened(seen)}


def updates_of(seen, comm_id):
    return [m["content"]["data"]["state"] for m in seen if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id]


def stream_texts(outputs):
    return "".join(o["text"] for o in outputs if o["output_type"] == "stream")


def test_interact_reruns_its_function_when_a_control_changes_and_shows_the_output_in_place(kernel):
    _, kc = kernel
    reply, seen = run_collecting(kc, 'fn square(v) { print(`n is ${v.n}`); v.n * v.n }\n'
                                     'interact(square, #{ n: slider(#{ min: 1, max: 10, value: 3 }) });')
    assert reply["status"] == "ok", reply
    states = widget_states(seen)
    output_id = next(i for i, s in states.items() if s["_model_name"] == "OutputModel")
    slider_id = next(i for i, s in states.items() if s["_model_name"] == "IntSliderModel")
    # ipywidgets 8.1's Output state: its own module, not the controls'.
    out = states[output_id]
    assert (out["_model_module"], out["_model_module_version"], out["_view_module"], out["_view_name"]) == ("@jupyter-widgets/output", "1.0.0", "@jupyter-widgets/output", "OutputView"), out
    assert out["outputs"] == [] and out["msg_id"] == ""
    panel = next(s for s in states.values() if s["_model_name"] == "VBoxModel")
    assert panel["children"] == ["IPY_MODEL_" + slider_id, "IPY_MODEL_" + output_id], panel
    # The function's print and its result went into the output area, not the cell.
    [first] = updates_of(seen, output_id)
    assert stream_texts(first["outputs"]) == "n is 3\n", first
    assert [o["data"]["text/plain"] for o in first["outputs"] if o["output_type"] == "display_data"] == ["9"], first
    assert not [m for m in seen if m["msg_type"] == "stream"], [m["content"] for m in seen if m["msg_type"] == "stream"]
    # The user drags the slider: the function runs again and replaces its output.
    _, after = send_comm(kc, slider_id, {"method": "update", "state": {"value": 7}, "buffer_paths": []})
    # The rerun's update may come before or after the kernel's idle for the message.
    update = next((m for m in after if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == output_id), None)
    deadline = time.monotonic() + TIMEOUT
    while update is None and time.monotonic() < deadline:
        m = kc.get_iopub_msg(timeout=TIMEOUT)
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == output_id:
            update = m
    outputs = update["content"]["data"]["state"]["outputs"]
    assert stream_texts(outputs) == "n is 7\n", outputs
    assert [o["data"]["text/plain"] for o in outputs if o["output_type"] == "display_data"] == ["49"], outputs
    # A function that fails says so in its output area; the cell itself is fine.
    reply, seen = run_collecting(kc, 'fn broken(v) { v.n.nope() }\ninteract(broken, #{ n: slider(#{ max: 3 }) });')
    assert reply["status"] == "ok", reply
    output_id = next(i for i, s in widget_states(seen).items() if s["_model_name"] == "OutputModel")
    [failed] = updates_of(seen, output_id)
    assert "interact:" in failed["outputs"][0]["text"] and "nope" in failed["outputs"][0]["text"], failed


def test_an_output_area_collects_what_it_is_given(kernel):
    _, kc = kernel
    reply, seen = run_collecting(kc, 'let o = output(); display(o);\no.write("epoch 1");\n'
                                     'let x = o.capture(|| { print("inside"); 41 + 1 });\no.show(table([#{ layers: 2, acc: 0.8 }]));\nx')
    assert reply["status"] == "ok", reply
    output_id = next(i for i, s in widget_states(seen).items() if s["_model_name"] == "OutputModel")
    last = updates_of(seen, output_id)[-1]["outputs"]
    assert [o["output_type"] for o in last] == ["stream", "stream", "display_data"], last
    assert last[0]["text"] == "epoch 1\n" and last[1]["text"] == "inside\n", last
    assert "<table" in last[2]["data"]["text/html"], last[2]
    assert result_text([m for m in seen if m["msg_type"] == "execute_result"]) == "42"
    reply, seen = run_collecting(kc, "o.clear();")
    assert updates_of(seen, output_id) == [{"outputs": []}]
    reply, _ = run_collecting(kc, "slider(#{}).clear()")
    assert reply["status"] == "error" and "output areas" in reply["evalue"], reply




def test_the_stop_button_ends_training_and_the_cell_goes_on_with_the_run_so_far(kernel):
    _, kc = kernel
    reply, _ = execute(kc, SETUP_TRAINING)
    assert reply["status"] == "ok", reply
    # 3 epochs of 375 steps: far longer than it takes to press the button.
    cell = kc.execute('let run = fit(model, train, val, #{ epochs: 3, lr: 5e-5, controls: true });\nprint("after the run");\nrun.steps')
    states, stop_id, readout_id, seen = {}, None, None, []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        m = kc.get_iopub_msg(timeout=TIMEOUT)
        if m["parent_header"].get("msg_id") != cell:
            continue
        seen.append(m)
        if m["msg_type"] == "comm_open":
            state = m["content"]["data"]["state"]
            states[m["content"]["comm_id"]] = state
            if state["_model_name"] == "ButtonModel":
                stop_id = m["content"]["comm_id"]
            if state["_model_name"] == "HTMLModel":
                readout_id = m["content"]["comm_id"]
        # Press Stop once the readout shows training under way.
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == readout_id and "step " in m["content"]["data"]["state"].get("value", ""):
            break
    assert states[stop_id]["description"] == "Stop" and states[stop_id]["button_style"] == "danger", states[stop_id]
    readout = m["content"]["data"]["state"]["value"]
    assert "lr " in readout and "loss " in readout and "/1125" in readout, readout
    running = []
    send_comm(kc, stop_id, {"method": "custom", "content": {"event": "click"}}, others=running)
    seen += [m for m in running if m["parent_header"].get("msg_id") == cell]
    reply = finish(kc, cell, seen)
    assert reply["status"] == "ok", reply
    assert "after the run" in "".join(m["content"]["text"] for m in seen if m["msg_type"] == "stream")
    steps = int(result_text([m for m in seen if m["msg_type"] == "execute_result"]))
    assert 0 < steps < 1125, steps
    final = updates_of(seen, stop_id)[-1]
    assert final["disabled"] is True and final["description"] == "Stopped", final
    assert "stopped after" in updates_of(seen, readout_id)[-1]["value"]
    # The run says it was stopped, and the next cell runs as usual.
    reply, outputs = execute(kc, "[run.interrupted, model.labels.len()]")
    assert reply["status"] == "ok" and result_text(outputs) == "[true, 2]", (reply, outputs)


def test_a_widget_the_frontend_closes_is_gone_and_says_so(kernel):
    _, kc = kernel
    _, seen = run_collecting(kc, "let s = slider(#{ max: 5 }); s")
    slider_id = next(i for i, st in widget_states(seen).items() if st["_model_name"] == "IntSliderModel")
    msg = kc.session.msg("comm_close", {"comm_id": slider_id, "data": {}})
    kc.shell_channel.send(msg)
    kc.comm_info()
    comms = kc.get_shell_msg(timeout=TIMEOUT)["content"]["comms"]
    assert slider_id not in comms, comms
    reply, _ = execute(kc, "s.value = 2;")
    assert reply["status"] == "error" and "this widget was closed" in reply["evalue"], reply


def test_a_handler_runs_while_a_cell_runs_between_its_statements(kernel):
    _, kc = kernel
    _, seen = run_collecting(kc, "let seen = []; let s = slider(#{ max: 9 });\ns.on_change(|v| { seen.push(v); print(`handled ${v}`); });\ns")
    slider_id = next(i for i, st in widget_states(seen).items() if st["_model_name"] == "IntSliderModel")
    # The loop ends when the handler has run, or after many rounds if it never does.
    cell = kc.execute("let rounds = 0;\nwhile seen.is_empty() && rounds < 50_000_000 { rounds += 1; }\nseen")
    seen = []
    wait_for(kc, cell, seen, lambda m: m["msg_type"] == "execute_input")
    running = []
    send_comm(kc, slider_id, {"method": "update", "state": {"value": 7}, "buffer_paths": []}, others=running)
    seen += [m for m in running if m["parent_header"].get("msg_id") == cell]
    reply = finish(kc, cell, seen)
    assert reply["status"] == "ok", reply
    assert result_text([m for m in seen if m["msg_type"] == "execute_result"]) == "[7]"
    # What the handler printed shows under the cell it ran inside. It captured `seen`, which the
    # loop locks for each `is_empty()`: it runs when the loop lets go, not failing on the lock.
    assert "handled 7" in streamed(seen, "stdout"), seen
    assert "failed" not in streamed(seen, "stderr"), streamed(seen, "stderr")
    reply, outputs = execute(kc, "rounds < 50_000_000")
    assert result_text(outputs) == "true"


def test_handlers_run_between_training_steps_and_one_can_stop_the_run(kernel):
    _, kc = kernel
    reply, outputs = execute(kc, SETUP_TRAINING + """
let area = output();
let peek = button("Peek"); peek.on_click(|w| area.capture(|| print(model.labels)));
let again = button("Again"); again.on_click(|w| fit(model, train, #{ epochs: 1 }));
let stop = button("Stop"); stop.on_click(|w| print(`stop_training: ${stop_training()}`));
hbox([peek, again, stop])""")
    assert reply["status"] == "ok", reply
    ids = {st["description"]: i for i, st in widget_states(outputs).items() if st["_model_name"] == "ButtonModel"}
    # 3 epochs of 375 steps: far longer than it takes to press the buttons.
    cell = kc.execute('let run = fit(model, train, val, #{ epochs: 3, lr: 5e-5 });\nprint("after the run");\nrun.steps')
    seen = []
    wait_for(kc, cell, seen, lambda m: m["msg_type"] == "update_display_data")
    running = []
    for name in ["Peek", "Again", "Stop"]:
        send_comm(kc, ids[name], {"method": "custom", "content": {"event": "click"}}, others=running)
    seen += [m for m in running if m["parent_header"].get("msg_id") == cell]
    reply = finish(kc, cell, seen)
    assert reply["status"] == "ok", reply
    out, err = streamed(seen, "stdout"), streamed(seen, "stderr")
    assert "stop_training: true" in out and "after the run" in out, (out, err)
    # The handlers that reached for the training model (inside an output area's capture, which
    # ended with it: the cell's own prints still show), or for a second run, were told why they could not.
    assert "this model is training in the running cell" in err, err
    assert "a run is already training in this cell" in err, err
    steps = int(result_text([m for m in seen if m["msg_type"] == "execute_result"]))
    assert 0 < steps < 1125, steps
    reply, outputs = execute(kc, "[run.interrupted, model.labels.len(), stop_training()]")
    assert reply["status"] == "ok" and result_text(outputs) == "[true, 2, false]", (reply, outputs)
