"""Hostile and long-running use of a real kernel, through raw ZeroMQ sockets
and jupyter_client: a seeded barrage of malformed, unsigned, replayed and
huge messages; loopback-only binding; a refused empty key; and long
sessions whose memory and file descriptors stay flat."""

import hashlib
import hmac
import json
import os
import random
import subprocess
import time
import uuid

import zmq

from tunebook_testing import REPO, TUNEBOOK, execute, result_text, worker_pid

SEED = 20261129
MESSAGES = 10_000
HUGE_MESSAGES = 8  # each 4-24 MiB
TIMEOUT = 120


def run(kc, code, timeout=TIMEOUT):
    """Executes code; returns (reply content, text/plain of the result or None)."""
    reply, outputs = execute(kc, code, timeout)
    return reply, result_text(outputs)


class Barrage:
    """Builds hostile multipart messages from a seeded generator, and counts
    the replies each kind must (or must not) get."""

    def __init__(self, key: bytes, rng: random.Random):
        self.key = key
        self.rng = rng
        self.expected_errors = 0  # signed, well-formed requests the kernel must answer with an error
        self.executed = 0  # signed executes that must run (each adds 1 to counter)
        self.kinds = {}
        # The comms a widget opened before the barrage (set by the test).
        self.comm_ids = []
        self.comm_messages = 0

    def sign(self, frames):
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for f in frames:
            mac.update(f)
        return mac.hexdigest().encode()

    def header(self, msg_type):
        return {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": "fuzz", "username": "fuzz",
                "date": "2026-11-29T00:00:00Z", "version": "5.3"}

    def signed(self, header, content, parent=None, metadata=None, raw=None):
        frames = raw or [json.dumps(x).encode() for x in (header, parent or {}, metadata or {}, content)]
        return [b"<IDS|MSG>", self.sign(frames), *frames]

    def junk(self, n):
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def message(self):
        """One hostile message and its kind."""
        r = self.rng
        kind = r.choice(["junk", "no_delimiter", "too_few", "bad_signature", "unsigned_execute", "signed_bad_json",
                         "signed_non_utf8", "signed_missing_fields", "signed_wrong_types", "signed_unknown",
                         "signed_execute_no_code", "signed_execute", "replay", "huge", "signed_comm"])
        if kind == "huge" and self.kinds.get("huge", 0) >= HUGE_MESSAGES:
            kind = "junk"
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if kind == "junk":
            return [self.junk(r.randint(0, 64)) for _ in range(r.randint(1, 8))]
        if kind == "no_delimiter":
            return [json.dumps(self.header("execute_request")).encode(), b"{}", b"{}", b"{\"code\": \"counter += 100\"}"]
        if kind == "too_few":
            return [b"<IDS|MSG>"] + [b"{}"] * r.randint(0, 4)
        if kind in ("bad_signature", "unsigned_execute"):
            frames = [json.dumps(x).encode() for x in (self.header("execute_request"), {}, {}, {"code": "counter += 1000;", "stop_on_error": False})]
            sig = {"bad_signature": self.junk(32).hex().encode(), "unsigned_execute": b""}[kind]
            if r.random() < 0.3:
                sig = hmac.new(b"not-the-key", b"".join(frames), hashlib.sha256).hexdigest().encode()
            return [b"<IDS|MSG>", sig, *frames]
        if kind == "signed_bad_json":
            frames = [b"{", b"{}", b"{}", b"{}"] if r.random() < 0.5 else [json.dumps(self.header("kernel_info_request")).encode(), b"[1,", b"{}", b"{}"]
            return self.signed(None, None, raw=frames)
        if kind == "signed_non_utf8":
            bad = b'{"msg_id": "\xff\xfe", "msg_type": "kernel_info_request"}'
            return self.signed(None, None, raw=[bad, b"{}", b"{}", b"{}"])
        if kind == "signed_missing_fields":
            h = self.header("kernel_info_request")
            del h[r.choice(["msg_id", "msg_type"])]
            return self.signed(h, {})
        if kind == "signed_wrong_types":
            h = self.header("execute_request")
            h["msg_type"] = r.choice([7, None, ["execute_request"], {"a": 1}])
            return self.signed(h, {"code": "counter += 1000;"})
        if kind == "signed_unknown":
            self.expected_errors += 1
            return self.signed(self.header(f"fuzz_{r.randint(0, 999)}_request"), {"x": self.junk(8).hex()})
        if kind == "signed_execute_no_code":
            self.expected_errors += 1
            code = r.choice([None, 42, ["counter += 1000;"], {"code": "counter += 1000;"}])
            content = {} if code is None else {"code": code}
            return self.signed(self.header("execute_request"), content)
        if kind == "signed_execute":
            self.executed += 1
            return self.signed(self.header("execute_request"), {"code": "counter += 1;", "silent": False, "store_history": True,
                                                               "stop_on_error": False, "allow_stdin": False, "user_expressions": {}})
        if kind == "signed_comm":
            # Comm messages get no reply: to the open widgets (values of the
            # wrong kind, unknown keys, unknown methods) and to ids never opened.
            msg_type = r.choice(["comm_msg", "comm_msg", "comm_open", "comm_close"])
            # (A frontend closing a real widget is tested in test_widgets.)
            comm_id = r.choice((self.comm_ids if msg_type == "comm_msg" else []) + [uuid.uuid4().hex, None, 7])
            data = r.choice([{"method": "update", "state": {"value": r.choice(["x", [1], {"a": 1}, True, None, 3])}, "buffer_paths": []},
                             {"method": "update", "state": {"injected": 1, "_model_name": "Evil"}}, {"method": "request_state"},
                             {"method": "custom", "content": {"event": "click"}}, {"method": self.junk(4).hex()}, None, [1, 2], "text"])
            content = {"comm_id": comm_id, "data": data}
            if msg_type == "comm_open":
                content["target_name"] = r.choice(["jupyter.widget", "jupyter.widget.control", "fuzz.target", None])
            self.comm_messages += 1
            return self.signed(self.header(msg_type), content)
        if kind == "replay":
            return "replay"
        if kind == "huge":
            return [b"<IDS|MSG>", b"0" * 64, b"{" + b" " * (r.randint(4, 24) << 20), b"{}", b"{}", b"{}"]
        raise AssertionError(kind)


def test_ten_thousand_hostile_messages_leave_the_kernel_correct(kernel):
    km, kc = kernel
    reply, _ = run(kc, "let counter = 0; let s = slider(#{ max: 10, value: 4 });")
    assert reply["status"] == "ok"
    start_count = reply["execution_count"]
    info = km.get_connection_info()
    barrage = Barrage(info["key"], random.Random(SEED))
    kc.comm_info()
    barrage.comm_ids = sorted(kc.get_shell_msg(timeout=TIMEOUT)["content"]["comms"])
    assert len(barrage.comm_ids) == 3, barrage.comm_ids  # the slider, its layout and its style
    ctx = zmq.Context.instance()
    sockets = {}
    for name in ("shell", "control"):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.RCVHWM, 0)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"tcp://{info['ip']}:{info[name + '_port']}")
        sockets[name] = s
    replies = {"shell": [], "control": []}

    def drain(timeout_ms=0):
        for name, s in sockets.items():
            while s.poll(timeout_ms):
                replies[name].append(s.recv_multipart())
                timeout_ms = 0

    # The message replayed below: executed once, then refused every time.
    last_signed_execute, last_signed_target = None, None
    replayed = 0
    sent = 0
    executes_on_control = 0
    t0 = time.time()
    while sent < MESSAGES:
        msg = barrage.message()
        if msg == "replay":
            if last_signed_execute is None:
                continue
            msg = last_signed_execute
            replayed += 1
        target = "shell" if barrage.rng.random() < 0.8 else "control"
        if msg != "replay" and msg[0] == b"<IDS|MSG>" and len(msg) == 6 and b'"msg_type": "comm_' in msg[2]:
            target = "shell"  # comms are shell messages; control refuses what it does not serve
        if msg is last_signed_execute:
            # Replayed where the original went: shell and control are served
            # by two threads, so across sockets either copy may come first.
            target = last_signed_target
        elif msg[0] == b"<IDS|MSG>" and len(msg) == 6 and b'"counter += 1;"' in msg[5]:
            last_signed_execute, last_signed_target = msg, target
            if target == "control":
                # Control does not run code: an execute there gets an error reply.
                executes_on_control += 1
        sockets[target].send_multipart(msg)
        sent += 1
        drain()
    # Every answerable message is answered: wait for as many replies as the
    # barrage must get (the assertions below check which), with a deadline.
    expected = barrage.executed + barrage.expected_errors
    while sum(len(v) for v in replies.values()) < expected and time.time() - t0 < 300:
        drain(200)
    # Any reply beyond those (a message answered twice) arrives right after.
    drain(500)
    elapsed = time.time() - t0

    def content(frames):
        i = frames.index(b"<IDS|MSG>")
        return json.loads(frames[i + 2])["msg_type"], json.loads(frames[i + 5])

    decoded = [content(f) for v in replies.values() for f in v]
    errors = [c for t, c in decoded if c.get("status") == "error"]
    oks = [c for t, c in decoded if t == "execute_reply" and c.get("status") == "ok"]
    print(f"\nsent {sent} hostile messages in {elapsed:.1f} s ({barrage.kinds}, {replayed} replays): "
          f"{len(errors)} error replies, {len(oks)} executed")
    # Signed executes ran exactly once each, on shell; on control they are refused.
    assert len(oks) == barrage.executed - executes_on_control
    assert len(errors) == barrage.expected_errors + executes_on_control
    for e in errors:
        assert e["ename"] in ("UnsupportedRequest", "BadRequest"), e
    # Nothing unsigned, forged or replayed ran, and the kernel still computes.
    reply, result = run(kc, "counter")
    assert reply["status"] == "ok"
    assert result == str(barrage.executed - executes_on_control)
    assert reply["execution_count"] == start_count + len(oks) + 1
    reply, result = run(kc, "[1, 2, 3].len() * 14")
    assert result == "42"
    # The slider's value kept its kind through the comm barrage (integers only), and its state its keys.
    reply, result = run(kc, "[type_of(s.value), s.value >= 0 && s.value <= 10]")
    assert barrage.comm_messages > 100 and result == '["i64", true]', (barrage.comm_messages, result)
    assert km.is_alive()
    for s in sockets.values():
        s.close()


def test_the_kernel_listens_only_on_the_connection_files_address(kernel):
    km, _ = kernel
    info = km.get_connection_info()
    ports = {info[k] for k in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")}
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, port = local.split(":")
                if state == "0A" and int(port, 16) in ports:
                    listening.setdefault(int(port, 16), set()).add(addr)
    assert set(listening) == ports, listening
    # 127.0.0.1 in /proc's little-endian hex.
    assert all(addrs == {"0100007F"} for addrs in listening.values()), listening


def test_a_connection_file_with_an_empty_key_is_refused_unless_allowed(tmp_path):
    conn = {"ip": "127.0.0.1", "transport": "tcp", "signature_scheme": "hmac-sha256", "key": "",
            "shell_port": 0, "iopub_port": 0, "stdin_port": 0, "control_port": 0, "hb_port": 0}
    path = tmp_path / "kernel.json"
    path.write_text(json.dumps(conn))
    done = subprocess.run([TUNEBOOK, "kernel", "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "empty key" in done.stderr and "--allow-unsigned" in done.stderr, done.stderr


def rss_kib(pid):
    """Resident memory of the kernel and its worker together."""
    return _rss_kib(pid) + _rss_kib(worker_pid(pid))


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds(pid):
    """Open descriptors of the kernel and its worker together."""
    return len(os.listdir(f"/proc/{pid}/fd")) + len(os.listdir(f"/proc/{worker_pid(pid)}/fd"))


def test_a_thousand_cells_keep_memory_and_descriptors_flat(kernel):
    km, kc = kernel
    pid = km.provisioner.pid
    samples = []
    for i in range(1000):
        reply, _ = run(kc, f"let v{i % 10} = [1, 2, 3]; print(v{i % 10}.len() + {i}); fn f{i % 7}(x) {{ x * {i} }}")
        assert reply["status"] == "ok", reply
        if i in (99, 499, 999):
            samples.append((i + 1, rss_kib(pid), open_fds(pid)))
    print(f"\ncells, RSS KiB, open fds: {samples}")
    assert reply["execution_count"] == 1000
    (_, rss_start, fds_start), _, (_, rss_end, fds_end) = samples
    assert rss_end - rss_start < 16 * 1024, samples
    assert fds_end == fds_start, samples


TRAIN_CELL = """
let model = load_model(TINY, #{ labels: ["bad", "good"], pooling: "mean" });
let rows = [];
for i in 0..64 { rows.push(#{ text: if i % 2 == 0 { "a good fun film" } else { "a dull bad plot" }, label: if i % 2 == 0 { "good" } else { "bad" } }); }
let data = dataset(rows).split(#{ val: 0.25, seed: 1 });
let train = data.train.tokenize(model, #{ max_len: 16 }).loader(#{ batch: 8, shuffle: true });
let val = data.val.tokenize(model, #{ max_len: 16 }).loader(#{ batch: 16 });
let run = fit(model, train, val, #{ optimizer: "adamw", lr: 1e-3, epochs: 2 });
run.steps == 12 && run.history.len() == 2
"""


def test_twenty_training_runs_in_one_kernel_keep_memory_and_descriptors_flat(kernel):
    km, kc = kernel
    pid = km.provisioner.pid
    tiny = json.dumps(str(REPO / "tests" / "fixtures" / "tiny-bert"))
    reply, _ = run(kc, f"const TINY = {tiny};")
    assert reply["status"] == "ok", reply
    samples = []
    for i in range(20):
        reply, result = run(kc, TRAIN_CELL)
        assert reply["status"] == "ok", reply
        assert result == "true"
        if i in (1, 9, 19):
            samples.append((i + 1, rss_kib(pid), open_fds(pid)))
    print(f"\nruns, RSS KiB, open fds: {samples}")
    (_, rss_start, fds_start), _, (_, rss_end, fds_end) = samples
    assert rss_end - rss_start < 32 * 1024, samples
    assert fds_end == fds_start, samples
