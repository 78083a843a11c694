"""CSV reading (long and wide layouts, bad rows) and CSV replay into a real ingest callable."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from bridge_helpers import Collector, bridge_subscriber, receive_samples

from twin3d.bridge.adapters import build_adapters, start_adapters
from twin3d.bridge.adapters.csv import read_csv
from twin3d.errors import AdapterError
from twin3d.model import Sample


def _write(tmp_path: Path, text: str, name: str = "run.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_long_layout_with_seq_iso_times_and_extra_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "channel,time,value,seq,source\n"
                            "plate/tc1,1763800000.25,81.5,17,plc\n"
                            "plate/tc2,2025-11-22T08:26:40Z,-3e2,,plc\n"
                            "\n"
                            "plate/tc1,2025-11-22T08:26:41,82,18,plc\n")
    assert list(read_csv(path)) == [
        Sample("plate/tc1", 81.5, 1763800000.25, 17),
        Sample("plate/tc2", -300.0, 1763800000.0, None),
        Sample("plate/tc1", 82.0, 1763800001.0, 18),      # naive ISO time: UTC
    ]


def test_wide_layout_skips_empty_cells_and_detects_semicolons(tmp_path: Path) -> None:
    path = _write(tmp_path, "Time;plate/tc1;plate/tc2\n0.0;20.5;21\n1.5;;22\n2;23;\n")
    assert [(s.channel, s.value, s.time) for s in read_csv(path)] == [
        ("plate/tc1", 20.5, 0.0), ("plate/tc2", 21.0, 0.0), ("plate/tc2", 22.0, 1.5), ("plate/tc1", 23.0, 2.0)]


def test_reads_the_bridge_export_layout(tmp_path: Path) -> None:
    # `twin3d export REC -o out.csv` writes at least channel,time,value,seq
    path = _write(tmp_path, "channel,time,value,seq,source\na/b,1.0,2.0,0,mqtt:plant\n")
    assert list(read_csv(path)) == [Sample("a/b", 2.0, 1.0, 0)]


@pytest.mark.parametrize(("text", "message"), [
    ("time,channel,value\n1,a,2\n2,a,abc\n", "run.csv:3: value 'abc' of channel 'a' is not a finite number"),
    ("time,channel,value\n1,a,nan\n", "run.csv:2: value 'nan' of channel 'a' is not a finite number"),
    ("time,channel,value\n1,a\n", "run.csv:2: 2 columns, the header has 3"),
    ("time,channel,value\nyesterday,a,1\n", "run.csv:2: time 'yesterday' is neither Unix seconds nor ISO 8601"),
    ("time,channel,value\n1,,1\n", "run.csv:2: empty channel"),
    ("time,channel,value,seq\n1,a,1,x\n", "run.csv:2: seq 'x' is not an integer"),
    ("t,a,b\n1,2,3\n", "run.csv:1: no 'time' column"),
    ("time\n1\n", "run.csv:1: only a time column"),
    ("time,a,a\n1,2,3\n", "run.csv:1: column 'a' appears twice"),
    ("time,a,b\n1,2,3\n2,3,x\n", "run.csv:3: value 'x' of channel 'b' is not a finite number"),
    ("time,a,b\n1,2,3,4\n", "run.csv:2: 4 columns, the header has 3"),
    ("", "run.csv:1: no header row"),
])
def test_bad_rows_are_one_line_errors_with_line_numbers(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(AdapterError) as err:
        list(read_csv(path))
    assert str(err.value).startswith(f"{tmp_path}/{message}")
    assert "\n" not in str(err.value) and ": " in str(err.value).split(message, 1)[1]  # says the fix


def test_missing_file_and_bad_tables(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="no such file: check the path"):
        list(read_csv(tmp_path / "nope.csv"))
    with pytest.raises(AdapterError, match=r"^\[\[csv\]\] #1: missing key 'path'"):
        build_adapters({"csv": [{}]}, Collector())
    with pytest.raises(AdapterError, match=r"^\[\[csv\]\] #1: path = 'nope.csv': no such file"):
        build_adapters({"csv": [{"path": "nope.csv"}]}, Collector(), base_dir=tmp_path)
    _write(tmp_path, "time,a\n1,1\n", "x.csv")
    with pytest.raises(AdapterError, match=r"speed = -1.0 must be a number >= 0"):
        build_adapters({"csv": [{"path": "x.csv", "speed": -1}]}, Collector(), base_dir=tmp_path)
    with pytest.raises(AdapterError, match=r"^\[csv\] is a single table: write it as \[\[csv\]\]"):
        build_adapters({"csv": {"path": "x.csv"}}, Collector())


def test_replay_keeps_the_recorded_pace_scaled_by_speed(tmp_path: Path) -> None:
    _write(tmp_path, "time,a,b\n100.0,1,2\n100.4,3,4\n100.8,5,6\n")

    async def main() -> Collector:
        ingest = Collector()
        [task] = start_adapters({"csv": [{"name": "heat", "path": "run.csv", "speed": 2.0}]}, ingest,
                                base_dir=tmp_path)
        t0, unix0 = time.monotonic(), time.time()
        await asyncio.wait_for(task, 10)
        ingest.arrival[:] = [t - t0 for t in ingest.arrival]
        ingest.unix0 = unix0  # type: ignore[attr-defined]
        return ingest

    ingest = asyncio.run(main())
    samples = ingest.samples
    assert [(s.channel, s.value) for s in samples] == [("a", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5), ("b", 6)]
    # 0.8 s of data at speed 2 takes ~0.4 s; values of one row arrive together
    assert ingest.arrival[2] >= 0.19 and ingest.arrival[4] >= 0.39
    # restamped (default): times are "now", spaced by the replay pace
    rel = [s.time - ingest.unix0 for s in samples]  # type: ignore[attr-defined]
    assert rel[0] == pytest.approx(0, abs=0.5)
    assert rel[2] - rel[0] == pytest.approx(0.2) and rel[4] - rel[0] == pytest.approx(0.4)
    assert {src for _, src in ingest.batches} == {"csv:heat"}


def test_replay_as_fast_as_possible_keeping_times_and_looping(tmp_path: Path) -> None:
    _write(tmp_path, "time,channel,value\n" + "".join(f"{10 + i},c{i % 3},{i}\n" for i in range(5000)))

    async def main() -> Collector:
        ingest = Collector()
        [task] = start_adapters({"csv": [{"path": str(tmp_path / "run.csv"), "speed": 0,
                                          "restamp": False, "max_batch": 1000}]}, ingest)
        await asyncio.wait_for(task, 20)
        return ingest

    ingest = asyncio.run(main())
    assert [s.time for s in ingest.samples] == [10.0 + i for i in range(5000)]
    assert [len(b) for b, _ in ingest.batches] == [1000] * 5

    async def looping() -> list[Sample]:
        ingest = Collector()
        [task] = start_adapters({"csv": [{"path": str(tmp_path / "run.csv"), "speed": 0,
                                          "restamp": False, "loop": True}]}, ingest)
        while len(ingest.samples) < 12_000:
            await asyncio.sleep(0.01)
        task.cancel()
        return ingest.samples

    samples = asyncio.run(looping())
    # the second pass follows on in time from the first
    assert samples[5000].time > samples[4999].time and samples[5000].value == 0.0


def test_bad_row_ends_the_replay_task_with_an_adapter_error(tmp_path: Path) -> None:
    _write(tmp_path, "time,a\n1,1\n2,two\n")

    async def main() -> None:
        [task] = start_adapters({"csv": [{"path": str(tmp_path / "run.csv"), "speed": 0}]}, Collector())
        with pytest.raises(AdapterError, match=r"run\.csv:3: value 'two' of channel 'a'"):
            await task

    asyncio.run(main())


def test_end_to_end_replay_through_a_real_bridge(tmp_path: Path) -> None:


    from twin3d.bridge import read_recording
    from twin3d.bridge.config import load_config

    _write(tmp_path, "time,plate/tc1,plate/tc2\n100.0,20,21\n101.0,22,23\n101.2,24,25\n101.4,26,27\n")
    (tmp_path / "bridge.toml").write_text('[[csv]]\nname = "heat"\npath = "run.csv"\nrestamp = false\n')
    config = load_config(tmp_path / "bridge.toml")       # relative path: bridge.toml's folder
    rec = tmp_path / "rec.db"

    async def main() -> list[dict[str, object]]:
        async with bridge_subscriber(config, rec, ["plate/*"]) as ws:
            # rows 2-4 are replayed 1 s after the first one, so this subscriber sees them live
            return await receive_samples(ws, lambda got: any(g["value"] == 27 for g in got))

    got = asyncio.run(main())
    assert [(g["channel"], g["value"], g["time"]) for g in got if g["time"] >= 101.0] == [
        ("plate/tc1", 22, 101.0), ("plate/tc2", 23, 101.0), ("plate/tc1", 24, 101.2),
        ("plate/tc2", 25, 101.2), ("plate/tc1", 26, 101.4), ("plate/tc2", 27, 101.4)]
    rows = list(read_recording(rec))
    assert [s.value for s in rows] == [20, 21, 22, 23, 24, 25, 26, 27]
    assert {s.source for s in rows} == {"csv:heat"}


def test_documented_example_config_and_data() -> None:
    import tomllib

    from twin3d.bridge.adapters.csv import CsvReplay

    folder = Path(__file__).parents[2] / "streaming" / "adapters"
    [adapter] = build_adapters(tomllib.loads((folder / "csv.example.toml").read_text()), Collector(),
                               base_dir=folder)
    assert isinstance(adapter, CsvReplay) and adapter.source == "csv:heat-test" and adapter.speed == 1.0
    samples = list(read_csv(adapter.path))
    assert {s.channel for s in samples} == {"plate/tc1", "plate/tc2", "plate/tc3"}
    assert len(samples) == 61 * 3 - 30          # tc3 is sampled every other row
    assert samples[-1].time - samples[0].time == 30.0


def test_channels_the_bridge_refuses_are_dropped_without_losing_the_batch(tmp_path: Path) -> None:
    from twin3d.bridge import Bridge, read_recording
    from twin3d.bridge.adapters.csv import CsvReplay

    _write(tmp_path, "time,plate/tc1,bad channel*\n1,10,11\n2,12,13\n3,14,15\n")
    rec = tmp_path / "rec.db"

    async def main() -> CsvReplay:
        bridge = Bridge(record=rec)
        await bridge.start("127.0.0.1", 0)
        try:
            replay = CsvReplay({"path": str(tmp_path / "run.csv"), "speed": 0, "restamp": False},
                               bridge.ingest)
            await replay.run()
        finally:
            await bridge.stop()
        return replay

    replay = asyncio.run(main())
    assert [(s.channel, s.value) for s in read_recording(rec)] == [("plate/tc1", 10), ("plate/tc1", 12),
                                                                     ("plate/tc1", 14)]
    assert replay.batcher.refused == {"bad channel*"} and replay.batcher.rejected == 3
