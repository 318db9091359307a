"""Kernel start-up and round-trip latency, Tunebook against ipykernel, both
driven by jupyter_client on this machine. Prints the same JSON lines as
benches/suite.rs.

    python benches/kernel_latency.py [--starts N] [--round-trips N]

- kernel_start: seconds from starting the process to its kernel_info_reply
  (jupyter_client's wait_for_ready), one value per start.
- first_cell: seconds from starting the process to the execute_reply of
  a trivial cell sent as soon as the kernel is ready (a kernel that answers
  kernel_info before its interpreter is loaded pays the rest here).
- execute_round_trip: milliseconds from sending a trivial execute_request
  to an idle kernel to receiving its execute_reply; the median of each
  start's round trips is one value.
- interrupt: milliseconds from the interrupt (km.interrupt_kernel, as a
  notebook's stop button) to the execute_reply of a cell busy in a loop.
"""

import argparse
import json
import statistics
import time

from jupyter_client.manager import KernelManager

KERNELS = {"tunebook": ("tunebook", "1 + 1", "let i = 0; loop { i += 1; }"), "ipykernel": ("python3", "1 + 1", "while True: pass")}


def reply_to(kc, msg_id):
    while True:
        reply = kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def measure(kernel_name, code, busy, round_trips):
    km = KernelManager(kernel_name=kernel_name)
    start = time.perf_counter()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        started = time.perf_counter() - start
        reply = reply_to(kc, kc.execute(code, store_history=False))
        first_cell = time.perf_counter() - start
        assert reply["content"]["status"] == "ok", reply["content"]
        # Let start-up traffic settle so that every round trip starts idle.
        time.sleep(0.5)
        trips = []
        for i in range(round_trips + 3):
            t0 = time.perf_counter()
            reply = reply_to(kc, kc.execute(code, store_history=False))
            if i >= 3:  # the first few warm caches on both sides
                trips.append((time.perf_counter() - t0) * 1e3)
            assert reply["content"]["status"] == "ok", reply["content"]
            time.sleep(0.01)
        msg_id = kc.execute(busy, store_history=False)
        time.sleep(0.5)
        t0 = time.perf_counter()
        km.interrupt_kernel()
        reply = reply_to(kc, msg_id)
        interrupted = (time.perf_counter() - t0) * 1e3
        assert reply["content"]["status"] == "error", reply["content"]
        return started, first_cell, statistics.median(trips), interrupted
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--round-trips", type=int, default=50)
    args = p.parse_args()
    starts = {impl: [] for impl in KERNELS}
    first_cells = {impl: [] for impl in KERNELS}
    trips = {impl: [] for impl in KERNELS}
    interrupts = {impl: [] for impl in KERNELS}
    # Alternating, so that drift in the machine's speed hits both alike.
    for _ in range(args.starts):
        for impl, (name, code, busy) in KERNELS.items():
            s, f, t, i = measure(name, code, busy, args.round_trips)
            starts[impl].append(s)
            first_cells[impl].append(f)
            trips[impl].append(t)
            interrupts[impl].append(i)
    for impl in KERNELS:
        print(json.dumps({"figure": "kernel_start", "impl": impl, "unit": "s", "values": starts[impl]}))
        print(json.dumps({"figure": "first_cell", "impl": impl, "unit": "s", "values": first_cells[impl]}))
        print(json.dumps({"figure": "execute_round_trip", "impl": impl, "unit": "ms", "values": trips[impl], "round_trips": args.round_trips}))
        print(json.dumps({"figure": "interrupt", "impl": impl, "unit": "ms", "values": interrupts[impl]}))


if __name__ == "__main__":
    main()
