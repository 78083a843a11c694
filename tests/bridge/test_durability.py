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

        async def killer(c: Client) -> tuple[int, int]:
            while c.acked < 20_000 or c.seq <= c.acked:  # mid-stream: some samples not yet acked
                await asyncio.sleep(0.001)
            first.send_signal(signal.SIGKILL)              # no shutdown, no final commit
            at = (c.acked, c.seq)
            await asyncio.get_running_loop().run_in_executor(None, first.wait)
            await asyncio.get_running_loop().run_in_executor(None, second.__enter__)
            return at

        async def stream() -> tuple[tuple[int, int], int, int]:
            async with Client(url, client_id="numbered", max_batch=200) as c:
                kill = asyncio.ensure_future(killer(c))
                for i in range(N):
                    await c.publish("line/n", float(i), 1000.0 + i)
                    if i % 1000 == 999:
                        await asyncio.sleep(0)              # let the client's tasks run
                at = await kill
                await asyncio.wait_for(c.flush(), 30)      # reconnects, resumes, resends
                return at, c.acked, c.resent

        try:
            (acked_at_kill, sent_at_kill), acked, resent = run(stream(), timeout=90)
        finally:
            second.__exit__(None, None, None)

    assert 20_000 <= acked_at_kill < sent_at_kill              # killed with samples in flight
    assert resent > 0 and acked == N - 1
    values = [s.value for s in read_recording(rec)]
    assert len(values) == N                                  # nothing twice
    assert values == [float(i) for i in range(N)]            # nothing missing, in order
