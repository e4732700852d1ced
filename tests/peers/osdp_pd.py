#!/usr/bin/env python3
"""An independent OSDP peripheral (PD) for rollcall's serial tests, built on LibOSDP (PyPI
`libosdp`). It speaks OSDP on DEVICE (one end of a pty pair), prints every command it receives
as a JSON line on stdout, and submits events it reads as JSON lines on stdin:

    {"card": "<hex bytes>", "bits": 26}     a Wiegand card read
    {"quit": true}                          stop

Usage: osdp_pd.py DEVICE ADDRESS

Without a key the PD is in install mode (it accepts the default key SCBK-D, and an osdp_KEYSET).
"""
import json
import os
import sys
import termios
import threading
import time
import tty

from osdp import (Capability, CardFormat, Channel, Event, LogLevel, PDCapabilities, PDInfo,
                  PdId, PeripheralDevice)


class PtyChannel(Channel):
    def __init__(self, path):
        super().__init__()
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        attrs = termios.tcgetattr(self.fd)
        attrs[4] = attrs[5] = termios.B115200
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def read(self, max_bytes):
        try:
            return os.read(self.fd, max_bytes)
        except BlockingIOError:
            return b""

    def write(self, buf):
        try:
            return os.write(self.fd, bytes(buf))
        except BlockingIOError:
            return 0

    def flush(self):
        pass


def emit(obj):
    print(json.dumps(obj, default=lambda b: b.hex() if isinstance(b, (bytes, bytearray)) else str(b)),
          flush=True)


def main():
    device, address = sys.argv[1], int(sys.argv[2])
    info = PDInfo(address, PtyChannel(device), scbk=None, name="rollcall-test-pd",
                  id=PdId(version=2, model=7, vendor_code=0x00A1B2, serial_number=0x12345678,
                          firmware_version=0x010203))
    caps = PDCapabilities([
        (Capability.OutputControl, 1, 2),
        (Capability.LEDControl, 1, 1),
        (Capability.AudibleControl, 1, 1),
        (Capability.CardDataFormat, 1, 1),
        (Capability.TextOutput, 1, 1),
        (Capability.CommunicationSecurity, 1, 1),
    ])

    def on_command(cmd):
        emit({"command": cmd})
        return 0, None

    pd = PeripheralDevice(info, caps, log_level=LogLevel.Warning, command_handler=on_command)
    pd.start()
    emit({"ready": True})
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("quit"):
            break
        if "card" in msg:
            data = bytes.fromhex(msg["card"])
            pd.submit_event({
                "event": Event.CardRead,
                "reader_no": 0,
                "direction": 0,
                "format": CardFormat.Wiegand,
                "length": msg.get("bits", len(data) * 8),
                "data": data,
            })
            emit({"submitted": msg})
    pd.stop()


if __name__ == "__main__":
    main()
