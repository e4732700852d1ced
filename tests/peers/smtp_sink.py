#!/usr/bin/env python3
"""A real SMTP server for rollcall's mail tests and the demo, built on aiosmtpd (PyPI). Every
message it accepts is parsed with Python's own `email` package (an implementation independent
of the sender's) and written to OUT_DIR as NNNNN.json:

    {"mail_from", "rcpt_tos", "subject", "from", "to", "message_id", "text", "html", "raw"}

Recipients whose local part starts with `refuse` are refused for good (550), ones starting with
`later` for now (451). With --auth USER:PASSWORD, mail is taken only after AUTH with those
(PLAIN or LOGIN; allowed without TLS unless --tls). With --tls CERT KEY it offers STARTTLS
and requires it before MAIL.

Prints `listening on HOST:PORT` once it accepts connections; stops on SIGTERM.

Usage: smtp_sink.py PORT OUT_DIR [--auth USER:PASSWORD] [--tls CERT KEY]
"""
import itertools
import json
import os
import signal
import ssl
import sys
import threading
from email import policy
from email.parser import BytesParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, out):
        self.out = out
        self.n = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local.startswith("refuse"):
            return "550 5.1.1 no such mailbox here"
        if local.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"] or ""),
            "from": str(msg["from"] or ""),
            "to": str(msg["to"] or ""),
            "message_id": str(msg["message-id"] or ""),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
            "raw": raw.decode("utf-8", "replace"),
        }
        n = next(self.n)
        tmp = os.path.join(self.out, f".{n:05}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out, f"{n:05}.json"))
        return "250 2.0.0 accepted"


def main():
    args = sys.argv[1:]
    auth = None
    if "--auth" in args:
        i = args.index("--auth")
        auth = args[i + 1].split(":", 1)
        del args[i : i + 2]
    tls = None
    if "--tls" in args:
        i = args.index("--tls")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args[i + 1], args[i + 2])
        del args[i : i + 3]
    port, out = int(args[0]), args[1]
    os.makedirs(out, exist_ok=True)
    kwargs = {}
    if auth is not None:
        user, password = auth

        def authenticator(server, session, envelope, mechanism, data):
            ok = isinstance(data, LoginPassword) and (
                data.login.decode() == user and data.password.decode() == password
            )
            return AuthResult(success=ok)

        kwargs = dict(
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=tls is not None,
        )
    if tls is not None:
        kwargs.update(tls_context=tls, require_starttls=True)
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
