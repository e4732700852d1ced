#!/usr/bin/env python3
"""LibOSDP's own control panel (PyPI `libosdp`) timing OUT commands to a PD, for comparison
with rollcall's: from submit_command to the command's completion callback, N times.
Prints one JSON line: {"p50_ms": …, "p99_ms": …, "n": N}.

Usage: osdp_cp_bench.py DEVICE ADDRESS N
"""
import json
import os
import sys
import threading
import time
import tty

from osdp import Channel, Command, ControlPanel, LogLevel, PDInfo


class PtyChannel(Channel):
    def __init__(self, path):
        super().__init__()
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)

    def read(self, max_bytes):
        try:
            return os.read(self.fd, max_bytes)
        except BlockingIOError:
            return b""

    def write(self, buf):
        return os.write(self.fd, bytes(buf))

    def flush(self):
        pass


def main():
    device, address, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    done = threading.Event()

    def completed(_address, _command, _status):
        done.set()

    cp = ControlPanel([PDInfo(address, PtyChannel(device), scbk=None)], log_level=LogLevel.Warning,
                      command_completion_handler=completed)
    # The same 1 ms service loop as the test PD (LibOSDP's start() sleeps 20 ms per round).
    cp.event, cp.lock = threading.Event(), threading.Lock()

    def service():
        while not cp.event.is_set():
            with cp.lock:
                cp.ctx.refresh()
            time.sleep(0.001)

    cp.thread = threading.Thread(target=service, daemon=True)
    cp.thread.start()
    if not cp.online_wait_all(timeout=20):
        print(json.dumps({"error": "PD never came online"}), flush=True)
        sys.exit(1)
    times = []
    for _ in range(n):
        done.clear()
        start = time.perf_counter()
        cp.submit_command(address, {"command": Command.Output, "output_no": 0, "control_code": 5,
                                    "timer_count": 1})
        if not done.wait(5):
            print(json.dumps({"error": "no completion"}), flush=True)
            sys.exit(1)
        times.append((time.perf_counter() - start) * 1000)
    cp.stop()
    times.sort()
    print(json.dumps({"p50_ms": times[len(times) // 2], "p99_ms": times[int((len(times) - 1) * 0.99)],
                      "n": n}), flush=True)


if __name__ == "__main__":
    main()
