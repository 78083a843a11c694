"""One way to say why: library exceptions become one line with the reason (and the fix)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from pxr import Sdf

from twin3d.errors import OutputError, StageError, reason
from twin3d.usd.layer import open_layer, open_stage, save_layer


def test_reason_of_a_real_pxr_error_is_its_last_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.usda"
    bad.write_text("#usda 1.0\n(\n  this is not usd\n")
    with pytest.raises(Exception) as info:
        Sdf.Layer.FindOrOpen(str(bad))
    text = reason(info.value)
    assert "\n" not in text and "Error in" not in text and text
    with pytest.raises(StageError, match=r"bad\.usda: cannot open the stage as a USD layer \(.+\)$"):
        open_layer(bad)
    with pytest.raises(StageError, match=r"bad\.usda: cannot open as a USD stage \(.+\)"):
        open_stage(bad)


def test_reason_of_os_errors_names_the_fix() -> None:
    assert reason(OSError(errno.ENOSPC, "No space left on device")) == \
        "No space left on device (free some space on that disk)"
    assert "permissions" in reason(PermissionError(errno.EACCES, "Permission denied"))
    assert reason(ValueError("\n  first line\nsecond")) == "first line"
    assert reason(KeyError()) == "KeyError"


def test_save_layer_into_a_missing_folder_is_one_output_error(tmp_path: Path) -> None:
    layer = Sdf.Layer.CreateAnonymous(".usda")
    with pytest.raises(OutputError, match=r"cannot write .*nowhere/x\.usda: folder .* does not exist"):
        save_layer(layer, tmp_path / "nowhere" / "x.usda")
    save_layer(layer, tmp_path / "x.usda")
    assert Sdf.Layer.FindOrOpen(str(tmp_path / "x.usda")) is not None
    assert [p.name for p in tmp_path.iterdir()] == ["x.usda"]   # no temporary left behind
