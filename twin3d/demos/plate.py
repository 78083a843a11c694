"""``twin3d demo`` (the default scene): the whole loop on the demo plate, from CAD file to a
recorded, viewable twin.

1. convert ``plate_holes.stl`` (a real machined plate, millimetres) to USD, with a press ram
   above its pad;
2. bind the sensors of ``plate_sensors.toml`` (11 thermocouples, 3 strain gauges, a load
   cell), bind the ram's height to the load cell (a ``translate`` property binding:
   :data:`RAM_STROKE_M` of travel over :data:`RAM_FULL_LOAD_N`), and build the plate's
   field models (steady-conduction FEM + residual kriging, P2 elasticity; cached on disk
   after the first run);
3. start the bridge in-process on 127.0.0.1 with recording on (SQLite, acks after commit);
4. run simulated sensors over real WebSocket connections: the plate's heater runs steadily
   while the frame that cools it through the rear bolts slowly warms up (its cooling water
   degrades), until a thermocouple goes into alarm; a press cycles on the pad and the front
   bolt's pull is measured by the load cell. The readings come from the models' own physics
   (:meth:`~twin3d.fields.base.LinearFieldModel.readings`) plus sensor noise;
5. subscribe like any viewer: reconstruct the temperature and von Mises fields and the
   plate's deflection (:meth:`~twin3d.fields.StressModel.displacement`, exaggerated
   :data:`DEFORM_SCALE` times, as the view's status line and each deformed mesh's
   ``twin:deformScale`` say) from the readings, move the ram, show them (a window with a
   display; off-screen to a movie and PNG snapshots without one), author them into the USD
   live layer and a USD recording.

Both inputs ship inside the package (``twin3d/data/``), so the demo runs from any folder after
a plain ``pip install``. A demo that fails leaves nothing behind in a folder it created.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from twin3d._types import PathLike
from twin3d.demos.common import DemoResult, fresh, in_folder, say, stream, validate
from twin3d.errors import Twin3DError
from twin3d.model import Sensor

__all__ = ["DEFORM_SCALE", "PlateScenario", "PlateScene", "build_stage", "build_twin",
           "plate_view", "press_ram_binding", "run_plate", "write_plate_scene"]

#: The demo's inputs, installed with the package (see twin3d/data/README.md).
DATA = Path(__file__).resolve().parents[1] / "data"
PLATE_CAD = DATA / "plate_holes.stl"
SENSOR_MAP = DATA / "plate_sensors.toml"

#: Sensor noise (standard deviation) by quantity, in the sensors' units.
NOISE = {"temperature": 0.2, "strain": 1.5, "force": 4.0}
RATE_HZ = 10.0          # each sensor publishes this often
USD_EVERY_S = 0.5       # fields into the USD recording this often
LIVE_EVERY_S = 2.0      # live layer saved this often
TEMP_RANGE = (20.0, 105.0)
#: von Mises colour range, MPa: from no stress to the yield strength of the plate's 6061-T6
#: aluminium (276 MPa), so the top colour means "yielding" whatever the first frame held.
STRESS_RANGE = (0.0, 276.0)
#: The plate's deflection is shown this many times (its true ~3 mm at the front edge would
#: not show on a 305 mm plate).
DEFORM_SCALE = 10.0
#: The plate's mesh and the ram's (prim names as the sensor map's targets use them).
PLATE_MESH, RAM_MESH = "plate_holes_stl", "press_ram"
#: Where the ram stands (its axis over the press pad, metres), how far it travels, and the
#: load cell's reading (N) at which it is down on the pad.
RAM_AXIS_XY = (0.1016, 0.1545)
RAM_STROKE_M = 0.04
RAM_FULL_LOAD_N = 700.0
_PLATE_TOP_M = 0.0127


def write_plate_scene(path: Path) -> Path:
    """Write the demo's CAD scene to ``path`` (``.glb``): the plate and the press ram.

    The plate is ``plate_holes.stl`` as shipped (millimetres, scaled to metres); the ram, a
    steel rod on a platen (42 mm across), stands on the press pad at the bottom of its stroke. glTF is
    Y-up, so Z-up points are written as (x, z, -y): an exact permutation that conversion
    undoes.
    """
    import trimesh

    plate = trimesh.load_mesh(PLATE_CAD, process=False)
    plate.apply_scale(0.001)  # type: ignore[no-untyped-call]
    # the ram's outline (radius, height) turned about its axis: one closed solid
    outline = np.array([[0.0, 0.0], [0.021, 0.0], [0.021, 0.012], [0.011, 0.012],
                        [0.011, 0.122], [0.0, 0.122]])
    ram = trimesh.creation.revolve(outline, sections=64)
    ram.apply_translation([*RAM_AXIS_XY, _PLATE_TOP_M])
    plate.visual = trimesh.visual.ColorVisuals(plate, face_colors=[196, 200, 206, 255])
    ram.visual = trimesh.visual.ColorVisuals(ram, face_colors=[92, 98, 110, 255])
    z_up_to_y_up = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float)
    scene = trimesh.Scene()
    for name, mesh in ((PLATE_MESH, plate), (RAM_MESH, ram)):
        mesh.apply_transform(z_up_to_y_up)
        scene.add_geometry(mesh, node_name=name, geom_name=name)
    scene.export(path)  # type: ignore[no-untyped-call]
    return path


def press_ram_binding(channel: str) -> Any:
    """The ram's height bound to the load cell ``channel``: up by :data:`RAM_STROKE_M` at no
    load, down on the pad at :data:`RAM_FULL_LOAD_N` (a ``translate`` along world Z, metres,
    clamped to the stroke)."""
    from twin3d.sensors import PropertyBinding

    return PropertyBinding(channel=channel, prim=f"/Plate/Geom/{RAM_MESH}", kind="translate",
                           name="press_ram", axis=(0.0, 0.0, 1.0),
                           scale=-RAM_STROKE_M / RAM_FULL_LOAD_N, offset=RAM_STROKE_M,
                           lower=0.0, upper=RAM_STROKE_M)


class PlateScenario:
    """Simulated plant: the plate's inputs over time and what its sensors read.

    The heater holds the hottest thermocouple near 55 °C while the frame's temperature at
    the rear bolts rises along a smooth ramp, calibrated so that the hottest thermocouple
    ends a few degrees beyond its alarm limit; the press on the pad and the bolt pull cycle.

    Args:
        heat: the plate's :class:`~twin3d.fields.HeatModel` (its forward model makes readings).
        stress: the plate's :class:`~twin3d.fields.StressModel`.
        sensors: the twin's sensors (limits and quantities).
        duration: seconds the scenario spans.
        seed: seed of the sensor noise.
    """

    def __init__(self, heat: Any, stress: Any, sensors: Mapping[str, Sensor], duration: float,
                 seed: int = 0) -> None:
        self.heat, self.stress, self.duration = heat, stress, max(float(duration), 1e-3)
        self.rate_hz = RATE_HZ
        self.sensors = sensors
        self.rng = np.random.default_rng(seed)
        self.ambient = 22.0
        src = [n for n in heat.inputs if n.startswith("source:")]
        fixed = [n for n in heat.inputs if n.startswith("fixed:")]
        per_watt = heat.readings({n: 1.0 for n in src})
        per_kelvin = heat.readings({n: 1.0 for n in fixed})
        base = heat.readings({n: 25.0 for n in fixed} | {"ambient": self.ambient})
        self.hottest = max(per_watt, key=per_watt.__getitem__)
        self.power = (55.0 - base[self.hottest]) / per_watt[self.hottest]
        limit = sensors[self.hottest].limits.alarm_high or 95.0
        self.frame_rise = (limit + 6.0 - 55.0) / max(per_kelvin[self.hottest], 1e-3)
        self._src, self._fixed = src, fixed
        # loads: peak gauge strain at 85% of the gauges' warn limit (the heat is the story)
        peak = {n: (1.0 if n == "press" else 2400.0) for n in stress.inputs}
        strains = [abs(v) for c, v in stress.readings(peak).items()
                   if sensors[c].quantity == "strain"]
        warn = min((sensors[c].limits.warn_high or math.inf) for c in stress.channels
                   if sensors[c].quantity == "strain") if strains else math.inf
        self.load_scale = 1.0 if not strains or not math.isfinite(warn) else \
            0.85 * warn / max(max(strains), 1e-9)

    def inputs(self, t: float) -> tuple[dict[str, float], dict[str, float]]:
        """Heat inputs (W, °C) and load-case amplitudes at time ``t`` (s)."""
        tau = min(max(t / self.duration, 0.0), 1.0)
        ramp = np.clip((tau - 0.1) / 0.8, 0.0, 1.0)
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: the cooling water degrades
        heat = {n: self.power for n in self._src}
        heat |= {n: 25.0 + self.frame_rise * ramp for n in self._fixed}
        heat["ambient"] = self.ambient + 0.5 * math.sin(t / 7.0)
        loads = {}
        for name in self.stress.inputs:
            if name == "press":  # kN on the pad
                amplitude = 0.6 + 0.4 * math.sin(2 * math.pi * t / 9.0 + 1.0)
            else:                # N of bolt pull
                amplitude = 1500.0 + 900.0 * math.sin(2 * math.pi * t / 6.0)
            loads[name] = amplitude * self.load_scale
        return heat, loads

    def readings(self, t: float) -> dict[str, float]:
        """Every sensor's reading at time ``t``: the physics plus sensor noise."""
        heat, loads = self.inputs(t)
        out: dict[str, float] = self.heat.readings(heat) | self.stress.readings(loads)
        for channel, value in out.items():
            sigma = NOISE.get(self.sensors[channel].quantity, 0.0)
            out[channel] = round(value + float(self.rng.normal(0.0, sigma)), 3)
        return out


def build_stage(folder: Path) -> Any:
    """Convert the demo plate and its press in ``folder``, bind the plate's sensors and the
    ram's height to the load cell; return the twin."""
    from twin3d.cad.convert import convert
    from twin3d.sensors import load_sensor_map
    from twin3d.twin import Twin
    from twin3d.usd.bind import bind_sensors

    missing = [p.name for p in (PLATE_CAD, SENSOR_MAP) if not p.is_file()]
    if missing:
        raise Twin3DError(f"the demo's data ({', '.join(missing)}) is missing from {DATA}: "
                          "reinstall twin3d (pip install --force-reinstall twin3d)")
    stage = folder / "plate.usda"
    t0 = time.perf_counter()
    cad = write_plate_scene(folder / "plate_press.glb")
    convert([cad], stage, name="Plate", progress=False)
    say(f"[1/5] converted {PLATE_CAD.name} (millimetres) and a press ram -> {stage} "
        f"({time.perf_counter() - t0:.1f} s)")
    sensor_map = load_sensor_map(SENSOR_MAP)
    ram = press_ram_binding(next(c for c in sensor_map.channels
                                 if sensor_map[c].quantity == "force"))
    bound = bind_sensors(stage, replace(sensor_map, bindings=[*sensor_map.bindings, ram]))
    twin = Twin.open(stage, reset=True)
    worst = max(s.snap_distance for s in bound) * twin.meters_per_unit * 1000
    say(f"[2/5] bound {len(bound)} sensors from {SENSOR_MAP.name} (largest snap "
        f"{worst:.2f} mm); the ram's height to {ram.channel}")
    return twin


def build_twin(folder: Path) -> tuple[Any, dict[str, Any], str]:
    """Build the demo plate's stage (:func:`build_stage`) and its field models in ``folder``;
    return (twin, models, plate mesh path)."""
    from twin3d.fields import build_field_models

    twin = build_stage(folder)
    t0 = time.perf_counter()
    per_mesh = build_field_models(twin)  # the [model] table travels in the bound stage
    if len(per_mesh) != 1:
        raise Twin3DError(f"the demo plate should have one mesh with sensors, found {len(per_mesh)}")
    mesh_path, models = next(iter(per_mesh.items()))
    for needed in ("temperature", "von_mises"):
        if needed not in models:
            raise Twin3DError(f"the demo's sensor map builds no {needed} model; check its [model]")
    say(f"[3/5] field models: {models['temperature']!r}, {models['von_mises']!r} "
        f"({time.perf_counter() - t0:.1f} s; built once, then cached on disk)")
    return twin, models, mesh_path


def plate_view(twin: Any, models: Mapping[str, Any], mesh_path: str, *, headless: bool,
               window_size: tuple[int, int], deform_scale: float = DEFORM_SCALE) -> Any:
    """The demo's view: the temperature field on the plate, bent by the stress model's
    displacement ``deform_scale`` times (the status line says ``deformation ×N``)."""
    from twin3d.view import View

    return View(twin, {mesh_path: models["temperature"]}, off_screen=headless,
                window_size=window_size, field_range=TEMP_RANGE, deform_scale=deform_scale,
                deform_models={mesh_path: models["von_mises"]})


class PlateScene:
    """Each frame of the plate demo: an orbiting camera, the ram at the load cell's value,
    the fields and the plate's deflection into the USD recording (and the live layer, less
    often).

    Args:
        twin: the demo's twin.
        view: its view.
        models: ``{"temperature": HeatModel, "von_mises": StressModel}``.
        mesh_path: the plate's mesh.
        duration: seconds the demo runs (the camera turns 50° over it).
        deform_scale: the exaggeration of the deflection written to the live layer (the
            recording's is its own ``deform_scale``).
    """

    fps = 10.0

    def __init__(self, twin: Any, view: Any, models: Mapping[str, Any], mesh_path: str,
                 duration: float, deform_scale: float = DEFORM_SCALE) -> None:
        self.twin, self.view, self.mesh_path = twin, view, mesh_path
        self.heat, self.stress = models["temperature"], models["von_mises"]
        self.duration, self.deform_scale = duration, deform_scale
        pts = np.concatenate([m.points for m in twin.meshes if m.path == mesh_path])
        self.center = (pts.min(axis=0) + pts.max(axis=0)) / 2  # framed on the plate
        self.radius = float(np.linalg.norm(np.ptp(pts, axis=0))) * 1.6
        self.next_usd = self.next_live = 0.0

    def frame(self, t: float, latest: Mapping[str, float], rec: Any) -> str:
        """Turn the camera, move the ram, write the fields when due; return the status."""
        azimuth = math.radians(-125.0 + 50.0 * t / self.duration)
        position = self.center + self.radius * np.array([math.cos(azimuth) * math.cos(0.6),
                                                         math.sin(azimuth) * math.cos(0.6),
                                                         math.sin(0.6)])
        self.view.set_camera(position, self.center, (0.0, 0.0, 1.0), 30.0)
        if t >= self.next_usd:
            live = t >= self.next_live
            self._write(latest, rec, live=live)
            if live:
                self.next_live = t + LIVE_EVERY_S
            self.next_usd = t + USD_EVERY_S
        hot = max(((v, c) for c, v in latest.items()
                   if self.twin.sensors[c].quantity == "temperature"), default=(math.nan, "-"))
        return f"hottest {hot[1]} {hot[0]:.1f} °C"

    def finish(self, latest: Mapping[str, float], rec: Any) -> None:
        """The fields and values at the end, into the recording and the live layer."""
        self._write(latest, rec, live=True)

    def _write(self, latest: Mapping[str, float], rec: Any, *, live: bool) -> None:
        if not latest:
            return
        now = time.time()
        temperature = self.heat.update(latest).copy()
        sigma = None if self.heat.sigma is None else self.heat.sigma.copy()
        von_mises = self.stress.update(latest).copy()
        bent = self.stress.displacement()  # of the readings just given to update
        rec.write(now, fields={self.mesh_path: {"temperature": temperature,
                                                "von_mises": von_mises}},
                  displacement={self.mesh_path: bent})
        if live:
            self.twin.update(latest, time=now)
            self.twin.set_field(self.mesh_path, "temperature", temperature, vmin=TEMP_RANGE[0],
                                vmax=TEMP_RANGE[1], sigma=sigma)
            self.twin.set_field(self.mesh_path, "von_mises", von_mises, vmin=STRESS_RANGE[0],
                                vmax=STRESS_RANGE[1])
            self.twin.set_displacement(self.mesh_path, bent, scale=self.deform_scale, time=now)
            self.twin.save()


def run_plate(output: PathLike = "twin3d-demo", *, duration: float = 30.0, seed: int = 0,
              headless: bool = True, movie: PathLike | None = None,
              window_size: tuple[int, int] = (960, 600),
              deform_scale: float = DEFORM_SCALE) -> DemoResult:
    """Run the plate demo end to end in ``output`` and return what it produced.

    Args:
        output: working folder (created, and removed again if the demo fails; earlier demo
            files in it are replaced).
        duration: seconds of simulated sensors.
        seed: seed of the sensor noise, for reproducible runs.
        headless: render off-screen into a movie (else a window).
        movie: the movie to write when headless (``.mp4`` or ``.gif``; default
            ``OUTPUT/demo.mp4``).
        window_size: the view's size in pixels.
        deform_scale: the exaggeration of the plate's deflection in the view, the live
            layer and the recording (> 0).

    Raises:
        Twin3DError: the demo files are missing or a step failed (the message says which).
    """
    if not (math.isfinite(deform_scale) and deform_scale > 0):
        raise Twin3DError(f"--deform-scale must be a positive number, got {deform_scale:g}")
    return in_folder(output, lambda folder: _run(folder, duration, seed, headless, movie,
                                                 window_size, deform_scale))


def _run(folder: Path, duration: float, seed: int, headless: bool, movie: PathLike | None,
         window_size: tuple[int, int], deform_scale: float) -> DemoResult:
    twin, models, mesh_path = build_twin(folder)
    result = DemoResult(folder=folder, stage=twin.stage_path, live=twin.root_path,
                        recording_db=folder / "recording.sqlite",
                        recording_usd=folder / "recording.usdc", scene="plate",
                        recorded=f"values, the ram, temperature, von Mises, the plate's "
                                 f"deflection ×{deform_scale:g}",
                        example="plate/tc1 42.0", view_args=" --field temperature")
    if headless:
        result.movie = Path(movie) if movie else folder / "demo.mp4"
    fresh(result.recording_db, result.recording_usd)
    scenario = PlateScenario(models["temperature"], models["von_mises"], twin.sensors, duration,
                             seed)
    view = plate_view(twin, models, mesh_path, headless=headless, window_size=window_size,
                      deform_scale=deform_scale)
    scene = PlateScene(twin, view, models, mesh_path, scenario.duration, deform_scale)
    intro = (f"[5/5] streaming {len(twin.sensors)} sensors at {RATE_HZ:g} Hz; the plate's "
             f"deflection shown ×{deform_scale:g}"
             + (f"; rendering off-screen to {result.movie}" if headless else "; close the "
                "window or press Ctrl-C to stop early"))
    asyncio.run(stream(twin, view, scenario, scene, result, patterns=["plate/*"],
                       headless=headless, record_fps=10.0, step="4/5", intro=intro,
                       ranges={"temperature": TEMP_RANGE, "von_mises": STRESS_RANGE},
                       deform_scale=deform_scale))
    validate(result)
    return result
