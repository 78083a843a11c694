"""Durability: SIGKILL the server mid-stream; after a restart every acked sample is there exactly once.

The publisher runs flat out so the recorder has rows queued when the kill lands: an ack sent
before the commit makes this test fail (checked by mutation). The "commit landed, ack lost"
resend path is covered deterministically by test_server.py::test_resent_samples_after_a_lost_ack_are_recorded_once.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from bridge_helpers import run, serve_process

from twin3d.bridge import Client, read_recording

N = 100_000


def test_sigkill_mid_stream_loses_no_acked_sample_and_duplicates_none(tmp_path: Path) -> None:
    rec = tmp_path / "run.db"
    with serve_process(tmp_path, "--record", str(rec), name="first") as (first, url):
        port = int(url.rsplit(":", 1)[1])
        second = serve_process(tmp_path, "--record", str(rec), name="second", port=port)

        entered = False

        async def killer(c: Client) -> tuple[int, int]:
            nonlocal entered
            while c.acked < 20_000 or c.seq <= c.acked:  # mid-stream: some samples not yet acked
                await asyncio.sleep(0.001)
            first.send_signal(signal.SIGKILL)              # no shutdown, no final commit
            at = (c.acked, c.seq)
            await asyncio.get_running_loop().run_in_executor(None, first.wait)
            await asyncio.get_running_loop().run_in_executor(None, second.__enter__)
            entered = True
            return at

        async def stream() -> tuple[tuple[int, int], int, int, int]:
            async with Client(url, client_id="numbered", max_batch=200) as c:
                kill = asyncio.ensure_future(killer(c))
                n = 0
                # publish until the kill has landed (a fast recorder may ack a whole finished
                # stream in one commit, leaving nothing in flight) and at least N samples
                while n < N or not kill.done():
                    await c.publish("line/n", float(n), 1000.0 + n)
                    n += 1
                    if n % 1000 == 0:
                        await asyncio.sleep(0)              # let the client's tasks run
                at = await kill
                await asyncio.wait_for(c.flush(), 30)      # reconnects, resumes, resends
                return at, c.acked, c.resent, n

        try:
            (acked_at_kill, sent_at_kill), acked, resent, n = run(stream(), timeout=90)
        finally:
            if entered:
                second.__exit__(None, None, None)

    assert 20_000 <= acked_at_kill < sent_at_kill              # killed with samples in flight
    assert resent > 0 and acked == n - 1
    values = [s.value for s in read_recording(rec)]
    assert len(values) == n                                  # nothing twice
    assert values == [float(i) for i in range(n)]            # nothing missing, in order
