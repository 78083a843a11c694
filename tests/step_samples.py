"""Small STEP files written for the tests: a cube whose faces have their own colours.

The text is an AP214 part: units (mm), one MANIFOLD_SOLID_BREP of six planar faces, each face
bounded by a loop of its four edges wound counter-clockwise seen from outside, and a STYLED_ITEM
with a surface colour per face.
"""

from __future__ import annotations

from pathlib import Path

#: the cube's faces: outward normal, then corners counter-clockwise seen from outside
_FACES = [
    ((0, 0, -1), [(0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 0)]),
    ((0, 0, 1), [(0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)]),
    ((0, -1, 0), [(0, 0, 0), (1, 0, 0), (1, 0, 1), (0, 0, 1)]),
    ((0, 1, 0), [(0, 1, 0), (0, 1, 1), (1, 1, 1), (1, 1, 0)]),
    ((-1, 0, 0), [(0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0)]),
    ((1, 0, 0), [(1, 0, 0), (1, 1, 0), (1, 1, 1), (1, 0, 1)]),
]


def cube_step(path: Path, colors: list[tuple[float, float, float]], size_mm: float = 20.0) -> Path:
    """Write a cube of ``size_mm`` with face ``i`` in ``colors[i % len(colors)]``; returns
    ``path``."""
    out: list[str] = []

    def add(text: str) -> int:
        out.append(text)
        return len(out)

    def point(p: tuple[float, ...]) -> int:
        return add("CARTESIAN_POINT('',(" + ",".join(f"{c * size_mm:.6f}" for c in p) + "))")

    def direction(d: tuple[float, ...]) -> int:
        return add("DIRECTION('',(" + ",".join(f"{c:.1f}" for c in d) + "))")

    app = add("APPLICATION_CONTEXT('automotive design')")
    add(f"APPLICATION_PROTOCOL_DEFINITION('international standard','automotive_design',2000,#{app})")
    pctx = add(f"PRODUCT_CONTEXT('',#{app},'mechanical')")
    product = add(f"PRODUCT('cube','cube','',(#{pctx}))")
    formation = add(f"PRODUCT_DEFINITION_FORMATION('','',#{product})")
    dctx = add(f"PRODUCT_DEFINITION_CONTEXT('part definition',#{app},'design')")
    definition = add(f"PRODUCT_DEFINITION('design','',#{formation},#{dctx})")
    shape = add(f"PRODUCT_DEFINITION_SHAPE('','',#{definition})")
    mm = add("( LENGTH_UNIT() NAMED_UNIT(*) SI_UNIT(.MILLI.,.METRE.) )")
    rad = add("( NAMED_UNIT(*) PLANE_ANGLE_UNIT() SI_UNIT($,.RADIAN.) )")
    sr = add("( NAMED_UNIT(*) SI_UNIT($,.STERADIAN.) SOLID_ANGLE_UNIT() )")
    unc = add(f"UNCERTAINTY_MEASURE_WITH_UNIT(LENGTH_MEASURE(1.E-07),#{mm},"
              "'distance_accuracy_value','')")
    ctx = add(f"( GEOMETRIC_REPRESENTATION_CONTEXT(3) GLOBAL_UNCERTAINTY_ASSIGNED_CONTEXT((#{unc}))"
              f" GLOBAL_UNIT_ASSIGNED_CONTEXT((#{mm},#{rad},#{sr})) REPRESENTATION_CONTEXT('','') )")
    origin = add(f"AXIS2_PLACEMENT_3D('',#{point((0, 0, 0))},#{direction((0, 0, 1))},"
                 f"#{direction((1, 0, 0))})")
    vertices: dict[tuple[int, ...], int] = {}
    edges: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}

    def vertex(p: tuple[int, ...]) -> int:
        if p not in vertices:
            vertices[p] = add(f"VERTEX_POINT('',#{point(p)})")
        return vertices[p]

    def oriented_edge(a: tuple[int, ...], b: tuple[int, ...]) -> int:
        if (b, a) in edges:  # the edge exists the other way: use it reversed
            return add(f"ORIENTED_EDGE('',*,*,#{edges[(b, a)]},.F.)")
        d = tuple(float(y - x) for x, y in zip(a, b, strict=True))
        vec = add(f"VECTOR('',#{direction(d)},{size_mm:.6f})")
        line = add(f"LINE('',#{point(a)},#{vec})")
        edges[(a, b)] = add(f"EDGE_CURVE('',#{vertex(a)},#{vertex(b)},#{line},.T.)")
        return add(f"ORIENTED_EDGE('',*,*,#{edges[(a, b)]},.T.)")

    faces = []
    for normal, corners in _FACES:
        loop = [oriented_edge(corners[k], corners[(k + 1) % 4]) for k in range(4)]
        edge_loop = add("EDGE_LOOP('',(" + ",".join(f"#{e}" for e in loop) + "))")
        bound = add(f"FACE_OUTER_BOUND('',#{edge_loop},.T.)")
        u = tuple(float(y - x) for x, y in zip(corners[0], corners[1], strict=True))
        plane_axis = add(f"AXIS2_PLACEMENT_3D('',#{point(corners[0])},#{direction(normal)},"
                         f"#{direction(u)})")
        plane = add(f"PLANE('',#{plane_axis})")
        faces.append(add(f"ADVANCED_FACE('',(#{bound}),#{plane},.T.)"))
    shell = add("CLOSED_SHELL('',(" + ",".join(f"#{f}" for f in faces) + "))")
    solid = add(f"MANIFOLD_SOLID_BREP('cube',#{shell})")
    brep = add(f"ADVANCED_BREP_SHAPE_REPRESENTATION('cube',(#{origin},#{solid}),#{ctx})")
    add(f"SHAPE_DEFINITION_REPRESENTATION(#{shape},#{brep})")
    styled = []
    for i, face in enumerate(faces):
        r, g, b = colors[i % len(colors)]
        colour = add(f"COLOUR_RGB('',{r:.4f},{g:.4f},{b:.4f})")
        fill = add(f"FILL_AREA_STYLE('',(#{add(f'FILL_AREA_STYLE_COLOUR({chr(39)}{chr(39)},#{colour})')}))")
        side = add(f"SURFACE_SIDE_STYLE('',(#{add(f'SURFACE_STYLE_FILL_AREA(#{fill})')}))")
        usage = add(f"SURFACE_STYLE_USAGE(.BOTH.,#{side})")
        style = add(f"PRESENTATION_STYLE_ASSIGNMENT((#{usage}))")
        styled.append(add(f"STYLED_ITEM('color',(#{style}),#{face})"))
    add("MECHANICAL_DESIGN_GEOMETRIC_PRESENTATION_REPRESENTATION('',("
        + ",".join(f"#{s}" for s in styled) + f"),#{ctx})")
    body = "\n".join(f"#{i + 1}={text};" for i, text in enumerate(out))
    path.write_text("ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION(('twin3d test cube'),'2;1');\n"
                    "FILE_NAME('cube.step','2026-01-01T00:00:00',(''),(''),'twin3d','twin3d','');\n"
                    "FILE_SCHEMA(('AUTOMOTIVE_DESIGN { 1 0 10303 214 1 1 1 1 }'));\nENDSEC;\n"
                    f"DATA;\n{body}\nENDSEC;\nEND-ISO-10303-21;\n")
    return path
