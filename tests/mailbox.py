"""A local SMTP server for the tests: what the product sends lands in `MAILBOX`."""

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(BytesParser().parsebytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [message for message in self.messages if message["To"] == address]

    async def link_token(self, address: str) -> str:
        """The `token` of the link in the last message to `address`. A served app sends after
        its response, so the message may arrive a little after the answer."""
        async with asyncio.timeout(5):
            while not self.to(address):  # noqa: ASYNC110 - the SMTP server runs in a thread
                await asyncio.sleep(0.01)
        body = str(self.to(address)[-1].get_payload(decode=True), "utf-8")
        link = next(word for word in body.split() if "?token=" in word)
        return parse_qs(urlsplit(link).query)["token"][0]


MAILBOX = Mailbox()


@contextmanager
def smtp_server() -> Iterator[int]:
    """Serves `MAILBOX` on a free local port, yielded."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    controller = Controller(MAILBOX, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
