"""Kernel start-up and round-trip latency, Tunebook against ipykernel, both
driven by jupyter_client on this machine. Prints the same JSON lines as
benches/suite.rs.

    python benches/kernel_latency.py [--starts N] [--round-trips N]

- kernel_start: seconds from starting the process to its kernel_info_reply
  (jupyter_client's wait_for_ready), one value per start.
- execute_round_trip: milliseconds from sending a trivial execute_request
  to an idle kernel to receiving its execute_reply; the median of each
  start's round trips is one value.
"""

import argparse
import json
import statistics
import time

from jupyter_client.manager import KernelManager

KERNELS = {"tunebook": ("tunebook", "1 + 1"), "ipykernel": ("python3", "1 + 1")}


def measure(kernel_name, code, round_trips):
    km = KernelManager(kernel_name=kernel_name)
    start = time.perf_counter()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        started = time.perf_counter() - start
        # Let start-up traffic settle so that every round trip starts idle.
        time.sleep(0.5)
        trips = []
        for i in range(round_trips + 3):
            t0 = time.perf_counter()
            msg_id = kc.execute(code, store_history=False)
            while True:
                reply = kc.get_shell_msg(timeout=60)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            if i >= 3:  # the first few warm caches on both sides
                trips.append((time.perf_counter() - t0) * 1e3)
            assert reply["content"]["status"] == "ok", reply["content"]
            time.sleep(0.01)
        return started, statistics.median(trips)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--round-trips", type=int, default=50)
    args = p.parse_args()
    starts = {impl: [] for impl in KERNELS}
    trips = {impl: [] for impl in KERNELS}
    # Alternating, so that drift in the machine's speed hits both alike.
    for _ in range(args.starts):
        for impl, (name, code) in KERNELS.items():
            s, t = measure(name, code, args.round_trips)
            starts[impl].append(s)
            trips[impl].append(t)
    for impl in KERNELS:
        print(json.dumps({"figure": "kernel_start", "impl": impl, "unit": "s", "values": starts[impl]}))
        print(json.dumps({"figure": "execute_round_trip", "impl": impl, "unit": "ms", "values": trips[impl], "round_trips": args.round_trips}))


if __name__ == "__main__":
    main()
