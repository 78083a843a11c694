import pytest

from twin3d.cli import main


def test_no_command_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2


def test_unknown_flag_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "--bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("twin3d: error:")


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "convert" in capsys.readouterr().out


def test_serve_on_a_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("twin3d serve: error:")
    assert "Traceback" not in "\n".join(err)


def test_output_into_a_reader_that_stops_is_not_an_error(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """`twin3d info STAGE | head -1`: once the reader has gone, no error line, exit 141."""
    import os

    import trimesh

    box = tmp_path / "box.stl"
    trimesh.creation.box((1.0, 2.0, 3.0)).export(box)
    assert main(["convert", str(box), "-o", str(tmp_path / "box.usda")]) == 0
    capsys.readouterr()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    with os.fdopen(write_end, "w", buffering=1) as pipe:  # line-buffered, as a terminal
        monkeypatch.setattr("sys.stdout", pipe)
        assert main(["info", str(tmp_path / "box.usda")]) == 141
    assert capsys.readouterr().err == ""
