"""The sensor map parser (pure: TOML text in, Sensors out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin3d.errors import SensorMapError
from twin3d.model import Limits
from twin3d.sensors import load_sensor_map, parse_sensor_map

SCENE_MAP = Path(__file__).resolve().parents[1] / "twin3d" / "data" / "plate_sensors.toml"

GOOD = """
[[sensor]]
channel = "a/t1"
quantity = "temperature"
unit = "degC"
target = "/A/Geom/Body"
position = [0.1, 0.2, 0.3]
limits = { warn_high = 80, alarm_high = 95 }
description = "hot spot"

[[sensor]]
channel = "a/load"
quantity = "force"
unit = "N"
target = "/A/Geom/Body"
vertex = 12

[model.thermal]
conductivity = 45.0
[model.thermal.convection]
h = 10.0
"""


def test_parses_sensors_limits_and_keeps_model_raw() -> None:
    smap = parse_sensor_map(GOOD)
    assert smap.channels == ["a/t1", "a/load"]
    t1, load = smap.sensors
    assert t1.position == (0.1, 0.2, 0.3) and t1.vertex is None
    assert t1.limits == Limits(warn_high=80.0, alarm_high=95.0)
    assert t1.description == "hot spot" and t1.unit == "degC"
    assert load.vertex == 12 and load.position is None and load.limits == Limits()
    assert smap.model == {"thermal": {"conductivity": 45.0, "convection": {"h": 10.0}}}
    assert smap.snap_tolerance is None
    assert smap["a/load"] is load


def test_example_scene_map() -> None:
    smap = load_sensor_map(SCENE_MAP)
    quantities = [s.quantity for s in smap.sensors]
    assert quantities.count("temperature") >= 8
    assert quantities.count("strain") >= 2
    assert [s.channel for s in smap.sensors if s.quantity == "force"] == ["plate/load"]
    assert all(s.channel.startswith("plate/") for s in smap.sensors)
    assert smap.snap_tolerance == pytest.approx(0.003)


def _one(body: str) -> str:
    return ('[[sensor]]\nchannel = "p/x"\nquantity = "temperature"\nunit = "degC"\n'
            'target = "/P/Geom/Body"\n' + body + "\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[sensor]\nchannel = "p/x"', "not valid TOML"),
        ("", "no [[sensor]] or [[binding]] tables"),
        ("sensor = 3", "array of tables"),
        ("speed = 3\n" + _one("vertex = 1"), "unknown top-level key 'speed'"),
        (_one("vertex = 1\nposition = [0, 0, 0]"), "sensor #1 'p/x': give exactly one of"),
        (_one(""), "sensor #1 'p/x': give exactly one of"),
        (_one("position = [0, 0]"), "'p/x': position must be three finite numbers"),
        (_one("position = [0, 0, nan]"), "'p/x': position must be three finite numbers"),
        (_one("vertex = -2"), "'p/x': vertex must be an integer >= 0"),
        (_one("vertex = 1\nlimits = { warn_high = 90, alarm_high = 80 }"),
         "'p/x': limits out of order: warn_high = 90 > alarm_high = 80"),
        (_one("vertex = 1\nlimits = { too_hot = 90 }"), "'p/x': unknown limit 'too_hot'"),
        (_one("vertex = 1\nlimits = { warn_high = \"80\" }"), "limit warn_high must be a finite"),
        (_one("vertex = 1\ncolour = \"red\""), "'p/x': unknown key 'colour'"),
        (_one("vertex = 1").replace('"temperature"', '"temprature"'),
         "'p/x': quantity 'temprature' is not one of temperature"),
        (_one("vertex = 1").replace('"/P/Geom/Body"', '"P/Geom/Body"'),
         "'p/x': target must be an absolute prim path"),
        (_one("vertex = 1").replace('channel = "p/x"\n', ""), "sensor #1: missing channel"),
        (_one("vertex = 1").replace('"p/x"', '"p x"'), "channel must not contain spaces"),
        (_one("vertex = 1") + _one("vertex = 2"),
         "sensor #2 'p/x': duplicate channel (already used by sensor #1)"),
        ("model = 3\n" + _one("vertex = 1"), "[model] must be a table"),
    ],
)
def test_bad_maps_raise_one_line_naming_the_sensor(text: str, expected: str) -> None:
    with pytest.raises(SensorMapError) as info:
        parse_sensor_map(text, source="s.toml")
    message = str(info.value)
    assert expected in message
    assert message.startswith("s.toml: ")
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SensorMapError, match="no such file"):
        load_sensor_map(tmp_path / "nope.toml")


def _bind(body: str) -> str:
    return '[[binding]]\nchannel = "box/lid"\nprim = "/B/Geom/lid"\n' + body + "\n"


def test_binding_tables_parse_with_their_defaults() -> None:
    smap = parse_sensor_map(_bind('kind = "rotate"\naxis = [1, 0, 0]\npivot = [0, 0.1, 0.2]\n'
                                  "limits = [0, 110]")
                            + _bind('kind = "color"\nstates = { warn_high = 80 }'))
    assert smap.sensors == []
    rotate, color = smap.bindings
    assert (rotate.kind, rotate.name, rotate.axis, rotate.pivot, rotate.frame) == \
        ("rotate", "rotate_box_lid", (1.0, 0.0, 0.0), (0.0, 0.1, 0.2), "world")
    assert (rotate.scale, rotate.offset, rotate.lower, rotate.upper) == (1.0, 0.0, 0.0, 110.0)
    assert rotate.motion(150.0) == 110.0 and rotate.motion(-5.0) == 0.0
    assert color.states.warn_high == 80.0 and color.colormap == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_bind(""), "binding #1 'box/lid': missing kind: add kind"),
        (_bind('kind = "spin"'), "kind 'spin' is not one of rotate, translate"),
        (_bind('kind = "rotate"\naxis = [1, 0, 0]'), "a rotate binding needs pivot"),
        (_bind('kind = "translate"'), "a translate binding needs axis"),
        (_bind('kind = "translate"\naxis = [1, 0]'), "axis must be three finite numbers"),
        (_bind('kind = "translate"\naxis = [0, 0, 0]'), "axis must not be zero"),
        (_bind('kind = "translate"\naxis = [1, 0, 0]\npivot = [0, 0, 0]'),
         "unknown key 'pivot' for a translate binding"),
        (_bind('kind = "translate"\naxis = [1, 0, 0]\nframe = "parent"'), "frame must be"),
        (_bind('kind = "translate"\naxis = [1, 0, 0]\nname = "2x"'), "name must be an identifier"),
        (_bind('kind = "visible"'), "a visible binding needs threshold"),
        (_bind('kind = "visible"\nthreshold = 1\ninvert = 1'), "invert must be true or false"),
        (_bind('kind = "color"'), "needs colormap"),
        (_bind('kind = "color"\ncolormap = "viridis"\nrange = [1, 1]'), "low < high"),
        (_bind('kind = "color"\ncolormap = "nope"\nrange = [0, 1]'), "not a matplotlib colour map"),
        (_bind('kind = "color"\nstates = {}'), "at least one limit"),
        (_bind('kind = "color"\nstates = { hot = 1 }'), "unknown limit 'hot'"),
        (_bind('kind = "attribute"'), "needs attribute"),
        (_bind('kind = "attribute"\nattribute = "inputs intensity"'), "attribute must be an"),
        (_bind('kind = "visible"\nthreshold = 1').replace('"/B/Geom/lid"', '"lid"'),
         "prim must be an absolute prim path"),
        (_bind('kind = "visible"\nthreshold = 1') * 2,
         "binding #2 'box/lid': /B/Geom/lid already has a binding named 'visible_box_lid'"),
        ("binding = 3", "'binding' must be an array of tables"),
    ],
)
def test_bad_bindings_raise_one_line_naming_the_binding(text: str, expected: str) -> None:
    with pytest.raises(SensorMapError) as info:
        parse_sensor_map(text, source="b.toml")
    message = str(info.value)
    assert expected in message, message
    assert message.startswith("b.toml: ") and "\n" not in message
