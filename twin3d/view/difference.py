"""A what-if's field minus the live one, as the view shows it (``twin3d view --difference S``).

``twin3d whatif`` authors a scenario's predicted fields into the live layer
(:mod:`twin3d.usd.scenario`); :func:`~twin3d.usd.scenario.scenario_fields` reads them back. A
predicted field is fixed, the live one follows the values pushed into the view:
:class:`ScenarioDifference` wraps the live field model so that each update gives
``scenario - live``, positive where the scenario would be higher than now. The view shows it in
a diverging colour map, :data:`DIFFERENCE_CMAP`, over a range symmetric about 0 (``View(...,
symmetric=True)``), so that white is "no change".

RdBu_r is the usual map for a signed change (blue lower, red higher). Its reds are dark
crimson to salmon; the nearest to the alarm colour is 28 CIELAB units from it (49 from warn),
and markers keep their outline and state text, so a field colour is not read as a state.

Examples:
    >>> fields = scenario_fields(twin.stage, "heater_x2")                     # doctest: +SKIP
    >>> diff = ScenarioDifference(heat, fields[mesh]["temperature"], "heater_x2")  # doctest: +SKIP
    >>> View(twin, {mesh: diff}, cmap=DIFFERENCE_CMAP, title=diff.title,       # doctest: +SKIP
    ...      symmetric=True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from twin3d.errors import RenderError

__all__ = ["DIFFERENCE_CMAP", "ScenarioDifference", "difference_unit"]

#: The colour map of a difference field (see the module docstring).
DIFFERENCE_CMAP = "RdBu_r"

#: Temperature units whose differences are kelvin (lower case).
_KELVIN = {"degc", "°c", "c", "celsius", "k", "kelvin"}


def difference_unit(unit: str) -> str:
    """The unit of a difference of values in ``unit``: ``K`` for a temperature in degC or K.

    Examples:
        >>> difference_unit("degC"), difference_unit("MPa")
        ('K', 'MPa')
    """
    return "K" if unit.strip().lower() in _KELVIN else unit


class ScenarioDifference:
    """A field model giving a scenario's field minus the live field of ``live``.

    Args:
        live: the live field model of the mesh (``update(values)`` gives its field).
        scenario: (n_vertices,) the scenario's predicted field on the same mesh.
        name: the scenario's name (its variant), for the title.

    Raises:
        RenderError: ``scenario`` does not have one finite value per vertex of the model.
    """

    def __init__(self, live: Any, scenario: npt.ArrayLike, name: str) -> None:
        self.live = live
        self.name = name
        values = np.array(scenario, dtype=np.float32).reshape(-1)
        if len(values) != live.n_vertices or not np.isfinite(values).all():
            raise RenderError(f"scenario {name!r}: its {live.quantity} field has {len(values)} "
                              f"values, the mesh {live.n_vertices}; run twin3d whatif again on "
                              "this stage")
        values.flags.writeable = False
        self.scenario = values
        self._out = np.empty_like(values)

    @property
    def channels(self) -> list[str]:
        """The channels of the live model."""
        return list(self.live.channels)

    @property
    def quantity(self) -> str:
        """The live model's quantity (``temperature``)."""
        return str(self.live.quantity)

    @property
    def unit(self) -> str:
        """The unit of the difference (:func:`difference_unit` of the live model's)."""
        return difference_unit(str(self.live.unit))

    @property
    def n_vertices(self) -> int:
        """The vertices the field covers."""
        return int(self.live.n_vertices)

    @property
    def title(self) -> str:
        """The colour bar's title, e.g. ``temperature: heater_x2 − live (K)``."""
        from twin3d.view.labels import unit_text

        return f"{self.quantity}: {self.name} − live ({unit_text(self.unit)})"

    def update(self, values: Mapping[str, float]) -> npt.NDArray[np.float32]:
        """Update the live model with ``values``; return (n_vertices,) scenario minus live
        (one buffer, rewritten by each call)."""
        np.subtract(self.scenario, np.asarray(self.live.update(values), dtype=np.float32),
                    out=self._out)
        return self._out

    def fitted_inputs(self) -> Any:
        """The live model's fitted inputs (the view shows their problems); none without."""
        fitted = getattr(self.live, "fitted_inputs", None)
        if fitted is not None:
            return fitted()
        from twin3d.fields.heat import FittedInputs

        return FittedInputs(values={}, units={}, sigma={}, problems=())
