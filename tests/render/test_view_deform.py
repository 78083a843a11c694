"""A view bent by a stress model while it shows another field; markers ride the bent part;
``twin3d view --deform-scale``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from twin3d.errors import FieldError

pytestmark = pytest.mark.render

SIZE = (480, 360)
TOP = dict(position=(0.2, 0.15, 0.75), focal_point=(0.2, 0.15, 0.0), up=(0.0, 1.0, 0.0))


class _Stress:
    """A model that gives displacements through a map ``U`` (as twin3d.fields.StressModel does):
    each channel's reading moves the whole sheet down by 0.05 mm per unit."""

    quantity, unit = "von_mises", "MPa"

    def __init__(self, channels: list[str], n: int) -> None:
        self.channels, self.n_vertices = channels, n
        self.U = np.zeros((3 * n, len(channels)), dtype=np.float32, order="F")
        self.U[2::3, :] = -0.00005
        self.values = np.zeros(len(channels))
        self.updates = 0

    def update(self, values: dict[str, float]) -> np.ndarray:
        for j, c in enumerate(self.channels):
            if c in values:
                self.values[j] = values[c]
        self.updates += 1
        return np.zeros(self.n_vertices, dtype=np.float32)

    def displacement(self, values: Any = None, out: Any = None) -> np.ndarray:
        return (self.U @ self.values.astype(np.float32)).reshape(-1, 3)


def test_a_stress_model_bends_the_part_while_the_temperature_is_shown(view_plate) -> None:  # type: ignore[no-untyped-def]
    """``deform_models``: the temperature colours the sheet, the stress model's displacement
    (×5) moves it; the markers on it follow and stay visible (their occlusion is tested against
    the sheet as drawn, not at rest, which now lies between them and the camera)."""
    from twin3d.view import View

    twin, heat = view_plate
    body = next(m for m in twin.meshes if m.path.endswith("Body"))
    stress = _Stress(["plate/tc1", "plate/tc2"], len(body.points))
    with View(twin, {body.path: heat}, off_screen=True, window_size=SIZE, labels="all",
              deform_scale=5.0, deform_models={body.path: stress}) as view:  # type: ignore[dict-item]
        view.set_camera(**TOP)
        view.push({"plate/tc1": 50.0, "plate/tc2": 30.0, "plate/tc3": 40.0, "plate/tc4": 45.0})
        view.render()
        ma = next(a for a in view.mesh_actors if a.path == body.path)
        assert view.quantity == "temperature" and ma.has_field
        assert stress.updates == 1 and ma.modes == 2  # its map went to the GPU once
        drop = 5.0 * 0.00005 * (50.0 + 30.0)  # the sheet is drawn 2 cm lower
        np.testing.assert_allclose(ma.drawn()[:, 2], ma.rest[:, 2] - drop, atol=1e-6)
        assert "deformation ×5" in view.status.GetText(0)
        z = view.glyphs.positions[:, 2]
        np.testing.assert_allclose(z, -drop, atol=1e-6)  # every marker rides the sheet
        hidden = np.asarray(view.glyphs.markers.points)[:, 0] < -50.0  # moved off screen
        assert not hidden.any()
    with pytest.raises(FieldError, match="gives no displacement"):
        View(twin, {body.path: heat}, off_screen=True, window_size=SIZE, deform_scale=5.0,
             deform_models={body.path: heat})


def test_twin3d_view_deform_scale_bends_the_plate_by_its_stress_model(
        bound_plate: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real plate and its stress model: the picture with ``--deform-scale 30`` differs
    from the one at rest where the plate moved, whichever field is shown."""
    import imageio.v2 as imageio

    from twin3d.cli import main
    from twin3d.fields import build_field_models
    from twin3d.twin import Twin

    twin = Twin.open(bound_plate)
    stress = build_field_models(twin)[twin.meshes[0].path]["von_mises"]
    twin.update(stress.readings({"press": 1.0, "bolt_pull": 1500.0}))
    twin.set_field("Plate", "temperature", np.full(len(twin.meshes[0].points), 40.0))
    twin.save()
    shots = {}
    for name, extra in (("rest", []), ("bent", ["--deform-scale", "30"])):
        out = tmp_path / f"{name}.png"
        assert main(["view", str(bound_plate), "--field", "temperature", "--size", "480x360",
                     "-o", str(out), *extra]) == 0
        shots[name] = np.asarray(imageio.imread(out), dtype=np.int16)
    changed = np.abs(shots["bent"] - shots["rest"]).max(axis=2) > 40
    assert changed.mean() > 0.01  # the bent plate covers other pixels
    capsys.readouterr()
