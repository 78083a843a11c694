"""A minimal device-side publisher for the twin3d bridge; needs only ``pip install websockets``.

Copy it onto the device. Five lines to publish a reading and wait until it is recorded::

    import asyncio, publisher
    async def main():
        async with publisher.connect("ws://bridge:8765", token="pub-secret") as ws:
            await publisher.publish(ws, "plate/tc1", 81.5, seq=1)   # returns after the ack
    asyncio.run(main())

From a shell: ``python publisher.py ws://127.0.0.1:8765 plate/tc1 81.5 [TOKEN]``.
"""

import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect as _connect


def connect(url, token=None):
    """Open a connection; the token goes in an Authorization: Bearer header."""
    return _connect(url, additional_headers={"Authorization": f"Bearer {token}"} if token else None)


async def publish(ws, channel, value, seq, t=None):
    """Send one sample and wait for its ack; raise RuntimeError on an error frame."""
    await ws.send(json.dumps({"type": "sample", "channel": channel, "value": value,
                              "time": time.time() if t is None else t, "seq": seq}))
    while True:
        msg = json.loads(await ws.recv())
        if msg["type"] == "error":
            raise RuntimeError(f"{msg['code']}: {msg['message']}")
        if msg["type"] == "ack" and msg["seq"] >= seq:
            return msg["seq"]


async def _main(url, channel, value, token=None):
    async with connect(url, token) as ws:
        seq = await publish(ws, channel, float(value), seq=int(time.time() * 1000))
        print(f"{channel} = {value}: recorded (ack {seq})")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: python publisher.py ws://HOST:PORT CHANNEL VALUE [TOKEN]")
    asyncio.run(_main(*sys.argv[1:]))
