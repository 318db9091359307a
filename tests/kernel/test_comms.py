"""Comms on the wire, with jupyter_client: the kernel keeps the registry of
open comms, closes a comm opened to a target it does not serve (as ipykernel
does), ignores comm messages it cannot use, and serves comm messages while
a cell runs instead of queueing them behind it."""

import time

from tunebook_testing import execute, result_text

TIMEOUT = 300  # seconds; a deadline against a hang on a busy machine, not a timing


def send(kc, msg_type, content):
    msg = kc.session.msg(msg_type, content)
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def iopub_for(kc, msg_id):
    """The iopub messages whose parent is `msg_id`, up to its idle."""
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return seen
    raise AssertionError(f"no idle for {msg_id}")


def comm_info(kc, target_name=None):
    msg_id = kc.comm_info(target_name)
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id and reply["msg_type"] == "comm_info_reply", reply
    assert reply["content"]["status"] == "ok", reply["content"]
    return reply["content"]["comms"]


def test_a_comm_to_an_unknown_target_is_closed_again_and_never_listed(kernel):
    _, kc = kernel
    assert comm_info(kc) == {}
    msg_id = send(kc, "comm_open", {"comm_id": "c-1", "target_name": "no.such.target", "data": {"x": 1}})
    seen = iopub_for(kc, msg_id)
    assert [m["msg_type"] for m in seen] == ["status", "comm_close", "status"], [m["msg_type"] for m in seen]
    assert seen[0]["content"]["execution_state"] == "busy"
    assert seen[1]["content"]["comm_id"] == "c-1"
    assert comm_info(kc) == {} and comm_info(kc, "no.such.target") == {}


def test_comm_messages_the_kernel_cannot_use_are_ignored_without_harm(kernel):
    _, kc = kernel
    reply, _ = execute(kc, "let kept = 5;")
    assert reply["status"] == "ok", reply
    for msg_type, content in [
        ("comm_msg", {"comm_id": "never-opened", "data": {"method": "update", "state": {"value": 3}}}),
        ("comm_close", {"comm_id": "never-opened", "data": {}}),
        ("comm_open", {"target_name": "jupyter.widget", "data": {}}),  # no comm_id
        ("comm_open", {"comm_id": 42, "target_name": "jupyter.widget", "data": {}}),  # not a string
        ("comm_open", {"comm_id": "c-2", "data": {}}),  # no target
        ("comm_msg", {"data": None}),
        ("comm_open", {"comm_id": "c-4", "target_name": ["jupyter.widget"], "data": {}}),  # target not a string
    ]:
        msg_id = send(kc, msg_type, content)
        seen = iopub_for(kc, msg_id)
        # Busy and idle only: no reply on shell, no comm opened or closed.
        assert [m["msg_type"] for m in seen] == ["status", "status"], (msg_type, content, seen)
    assert comm_info(kc) == {}
    reply, outputs = execute(kc, "kept + 1")
    assert reply["status"] == "ok" and result_text(outputs) == "6", reply


def test_comm_messages_are_served_while_a_cell_runs(kernel):
    km, kc = kernel
    cell = kc.execute('print("running"); let i = 0; loop { i += 1; }')
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == cell and msg["msg_type"] == "stream" and "running" in msg["content"]["text"]:
            break
    # The cell never ends by itself: these answers can only come while it runs.
    assert comm_info(kc) == {}
    msg_id = send(kc, "comm_open", {"comm_id": "c-3", "target_name": "jupyter.widget", "data": {}})
    assert [m["msg_type"] for m in iopub_for(kc, msg_id)] == ["status", "comm_close", "status"]
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == cell and reply["content"]["status"] == "error", reply["content"]
