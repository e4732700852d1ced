#!/usr/bin/env python3
"""Independent OSDP peripherals (PDs) for rollcall's serial tests, built on LibOSDP (PyPI
`libosdp`). One PD per ADDRESS shares DEVICE (one end of a pty pair) like devices on one RS-485
bus: every byte from the control panel reaches every PD, and each answers only to its address.
Every command a PD receives is printed as a JSON line on stdout (with the PD's address); JSON
lines on stdin submit events:

    {"card": "<hex bytes>", "bits": 26, "pd": 101}   a Wiegand card read (pd: the first if absent)
    {"inputs": [1, 0], "pd": 101}                    input status (0: door contact, 1: exit button)
    {"local": [1, 0], "pd": 101}                     local status (tamper, power failure)
    {"watch_db": "PATH"}                              on each output command, count the granted
                                                      events committed in the node's SQLite file
                                                      at PATH (a second, read-only process) and
                                                      add it to the printed command
    {"quit": true}                                    stop

Usage: osdp_pd.py DEVICE ADDRESS [ADDRESS ...] [--scbk HEX]

Without --scbk each PD is in install mode (it accepts the default key SCBK-D, and osdp_KEYSET);
with it, each PD holds that secure channel base key (16 bytes in hex).
"""
import json
import os
import sqlite3
import sys
import termios
import threading
import time
import tty

from osdp import (Capability, CardFormat, Channel, Event, LogLevel, PDCapabilities, PDInfo,
                  PdId, PeripheralDevice, StatusReportType)


class Bus:
    """The shared line: one reader thread copies incoming bytes to every PD's queue."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.lock = threading.Lock()
        self.inboxes = []
        threading.Thread(target=self.pump, daemon=True).start()

    def pump(self):
        while True:
            data = os.read(self.fd, 512)
            with self.lock:
                for inbox in self.inboxes:
                    inbox.extend(data)

    def channel(self):
        inbox = bytearray()
        with self.lock:
            self.inboxes.append(inbox)
        return BusChannel(self, inbox)


class BusChannel(Channel):
    def __init__(self, bus, inbox):
        super().__init__()
        self.bus, self.inbox = bus, inbox

    def read(self, max_bytes):
        with self.bus.lock:
            data = bytes(self.inbox[:max_bytes])
            del self.inbox[:max_bytes]
        return data

    def write(self, buf):
        return os.write(self.bus.fd, bytes(buf))

    def flush(self):
        pass


WATCHED = {"db": None}


def granted_committed():
    """Granted events in the watched node database, as another process sees them now."""
    db = sqlite3.connect(f"file:{WATCHED['db']}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT COUNT(*) FROM events WHERE decision = 'granted'").fetchone()[0]
    finally:
        db.close()


def emit(obj):
    print(json.dumps(obj, default=lambda b: b.hex() if isinstance(b, (bytes, bytearray)) else str(b)),
          flush=True)


def make_pd(bus, address, scbk):
    info = PDInfo(address, bus.channel(), scbk=scbk, name=f"rollcall-test-pd-{address}",
                  id=PdId(version=2, model=7, vendor_code=0x00A1B2,
                          serial_number=0x12345678 + (address - 101), firmware_version=0x010203))
    caps = PDCapabilities([
        (Capability.ContactStatusMonitoring, 1, 2),
        (Capability.OutputControl, 1, 2),
        (Capability.LEDControl, 1, 1),
        (Capability.AudibleControl, 1, 1),
        (Capability.CardDataFormat, 1, 1),
        (Capability.TextOutput, 1, 1),
        (Capability.CommunicationSecurity, 1, 1),
    ])

    def on_command(cmd):
        cmd = dict(cmd)
        cmd["pd"] = address
        if WATCHED["db"] and "output_no" in cmd:
            cmd["granted_committed"] = granted_committed()
        emit({"command": cmd})
        return 0, None

    pd = PeripheralDevice(info, caps, log_level=LogLevel.Warning, command_handler=on_command)
    # LibOSDP's own start() services the line every 20 ms; a PD on a real bus answers within a
    # few milliseconds, so this loop services it every millisecond (stop() still works: it uses
    # the same event, lock and thread attributes).
    pd.event, pd.lock = threading.Event(), threading.Lock()

    def service():
        while not pd.event.is_set():
            with pd.lock:
                pd.ctx.refresh()
            time.sleep(0.001)

    pd.thread = threading.Thread(target=service, name=f"pd-{address}", daemon=True)
    pd.thread.start()
    return pd


def main():
    args = sys.argv[1:]
    scbk = None
    if "--scbk" in args:
        i = args.index("--scbk")
        scbk = bytes.fromhex(args[i + 1])
        del args[i:i + 2]
    device, addresses = args[0], [int(a) for a in args[1:]]
    bus = Bus(device)
    pds = {a: make_pd(bus, a, scbk) for a in addresses}
    emit({"ready": True, "pds": addresses})
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("quit"):
            break
        if "watch_db" in msg:
            WATCHED["db"] = msg["watch_db"]
            emit({"watching": msg["watch_db"]})
        if "card" in msg:
            data = bytes.fromhex(msg["card"])
            pds[msg.get("pd", addresses[0])].submit_event({
                "event": Event.CardRead,
                "reader_no": 0,
                "direction": 0,
                "format": CardFormat.Wiegand,
                "length": msg.get("bits", len(data) * 8),
                "data": data,
            })
            emit({"submitted": msg})
        for key, kind in (("inputs", StatusReportType.Input), ("local", StatusReportType.Local)):
            if key in msg:
                pds[msg.get("pd", addresses[0])].submit_event({
                    "event": Event.Status,
                    "type": kind,
                    "report": bytes(msg[key]),
                })
                emit({"submitted": msg})
    for pd in pds.values():
        pd.stop()


if __name__ == "__main__":
    main()
