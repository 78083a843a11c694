"""The twin engine: the model keeps running on the data and says what the sensors cannot.

It answers four questions from the twin's physics, live, and publishes the answers back
through the bridge as channels (recorded, subscribable and exported like any sensor):

* *what is the value where I have no sensor?* ``twin/virtual/<name>`` (+ ``/sigma``);
* *is this sensor lying?* ``twin/health/<channel>`` (leave-one-out residual, in sigma) and
  ``twin/suspect/<channel>`` (drifting, stuck, noisy or dead);
* *when will this cross its limit?* ``twin/eta/<channel>/<limit>`` (+ ``/sigma``);
* *what happens if I change that?* :meth:`Engine.what_if`, authored as a ``scenario`` variant;

plus the fitted inputs ``twin/input/<name>`` and alarms as events (limit crossings, predicted
crossings, suspect and stale sensors, impossible inputs) raised and cleared through the bridge.

Modules: ``config`` (the ``[[virtual]]`` and ``[engine]`` tables), ``health`` (leave-one-out,
fault checks), ``forecast`` (trends and crossings), ``virtual`` (points on the part), ``core``
(:class:`Engine`, sans-I/O), ``whatif``, ``run`` (on a bridge), ``adapter`` (the ``[[engine]]``
table of bridge.toml), ``plant`` (a simulated plant with sensor faults, for trials and tests).
"""

from __future__ import annotations

from twin3d._lazy import lazy_exports as _lazy_exports

__all__ = ["AlarmChange", "Engine", "EngineSettings", "SimulatedPlant", "Step", "VirtualSensor",
           "WhatIf", "run_engine"]

_LAZY = {
    "AlarmChange": "twin3d.engine.core",
    "Engine": "twin3d.engine.core",
    "Step": "twin3d.engine.core",
    "EngineSettings": "twin3d.engine.config",
    "VirtualSensor": "twin3d.engine.config",
    "WhatIf": "twin3d.engine.whatif",
    "SimulatedPlant": "twin3d.engine.plant",
    "run_engine": "twin3d.engine.run",
}

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
