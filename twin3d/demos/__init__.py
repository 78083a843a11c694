"""``twin3d demo``: the whole loop on a demo twin, from CAD file to a recorded, viewable twin.

Two scenes: ``plate`` (:mod:`twin3d.demos.plate`, the default), a heated plate under a press
whose fields are reconstructed from its sensors; ``robot`` (:mod:`twin3d.demos.robot`), the
SO-101 arm converted from its URDF and moved through its joint channels in a pick-and-place
cycle while its servos warm up. Both run through a real bridge with recording on
(:mod:`twin3d.demos.common`); their inputs ship inside the package (``twin3d/data/``).
"""

from __future__ import annotations

from twin3d._types import PathLike
from twin3d.demos.common import DemoResult, summary
from twin3d.errors import Twin3DError

__all__ = ["SCENES", "DemoResult", "default_output", "run_demo", "summary"]

#: The demo scenes, the first is the default.
SCENES = ("plate", "robot")


def default_output(scene: str) -> str:
    """The working folder a scene uses by default.

    Examples:
        >>> default_output("plate"), default_output("robot")
        ('twin3d-demo', 'twin3d-demo-robot')
    """
    return "twin3d-demo" if scene == "plate" else f"twin3d-demo-{scene}"


def run_demo(output: PathLike | None = None, *, scene: str = "plate", duration: float = 30.0,
             seed: int = 0, headless: bool | None = None, movie: PathLike | None = None,
             window_size: tuple[int, int] = (960, 600),
             deform_scale: float | None = None) -> DemoResult:
    """Run a demo scene end to end and return what it produced.

    Args:
        output: working folder (default: :func:`default_output`); created, and removed
            again if the demo fails; earlier demo files in it are replaced.
        scene: one of :data:`SCENES`.
        duration: seconds of simulated sensors.
        seed: seed of the sensor noise, for reproducible runs.
        headless: render off-screen (default: when there is no display).
        movie: the movie to write when headless (``.mp4`` or ``.gif``; default
            ``OUTPUT/demo.mp4``).
        window_size: the view's size in pixels.
        deform_scale: the exaggeration of the plate's deflection (scene ``plate`` only;
            default :data:`twin3d.demos.plate.DEFORM_SCALE`).

    Raises:
        Twin3DError: an unknown scene, a bad duration or deform scale, a deform scale for
            a scene where nothing deforms, missing demo files or a failed step (the
            message says which).
    """
    from twin3d.view.renderer import has_display

    if scene not in SCENES:
        raise Twin3DError(f"unknown demo scene {scene!r}: choose one of {', '.join(SCENES)}")
    if duration <= 0:
        raise Twin3DError(f"--duration must be positive, got {duration}")
    off_screen = not has_display() if headless is None else headless
    folder = output if output is not None else default_output(scene)
    if scene == "robot":
        from twin3d.demos.robot import run_robot

        if deform_scale is not None:
            raise Twin3DError("--deform-scale: nothing deforms in the robot scene (the plate "
                              "scene shows its deflection)")

        return run_robot(folder, duration=duration, seed=seed, headless=off_screen, movie=movie,
                         window_size=window_size)
    from twin3d.demos.plate import DEFORM_SCALE, run_plate

    return run_plate(folder, duration=duration, seed=seed, headless=off_screen, movie=movie,
                     window_size=window_size,
                     deform_scale=DEFORM_SCALE if deform_scale is None else deform_scale)
