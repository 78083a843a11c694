"""A vtk.js serializer for ``vtkPolyData`` that hashes each unchanged cell list only once.

trame-vtk's own serializer exports the cells of a polydata into a new legacy-format array on
every ``update()`` and hashes it (MD5) to tell the browser whether to fetch it again: for a
mesh whose triangles never change, that hash was about 2/3 of the time of an update. This one
keeps the exported array of each cell list for as long as the cell list is unmodified, so
trame-vtk's digest cache (keyed by array and modification time) answers without hashing.
The state it produces is the same as trame-vtk's.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install_polydata_serializer"]

# address of a cell array -> (the array, its modification time, the cells in legacy format);
# the array is held so its address stays its own; entries only we hold are dropped
_EXPORTED: dict[str, tuple[Any, int, Any]] = {}
_PRUNE_AT = 256


def _legacy_cells(cells: Any) -> Any:
    """The cells as a legacy ``vtkIdTypeArray`` (n, id, id, ...), exported once per change."""
    from vtkmodules.vtkCommonCore import vtkIdTypeArray

    key, mtime = cells.__this__, cells.GetMTime()
    hit = _EXPORTED.get(key)
    if hit is not None and hit[1] == mtime:
        return hit[2]
    if len(_EXPORTED) >= _PRUNE_AT:
        for k in [k for k, v in _EXPORTED.items() if v[0].GetReferenceCount() <= 1]:
            del _EXPORTED[k]
    out = vtkIdTypeArray()
    cells.ExportLegacyFormat(out)
    _EXPORTED[key] = (cells, mtime, out)
    return out


def _polydata(parent: Any, dataset: Any, dataset_id: str, context: Any, _depth: int,
              requested_fields: list[str] | None = None) -> dict[str, Any] | None:
    from trame_vtk.modules.vtk.serializers.helpers import (
        extract_required_fields,
        get_array_description,
    )
    from trame_vtk.modules.vtk.serializers.registry import class_name
    from trame_vtk.modules.vtk.serializers.utils import get_js_array_type, reference_id

    if dataset is None or dataset.GetPoints() is None:
        return None
    points_data = dataset.GetPoints().GetData()
    convert = {}
    js_type = get_js_array_type(points_data)
    if js_type not in ("Float32Array", "Float64Array"):
        convert["dataType"] = "Float32Array" if "32" in js_type else "Float64Array"
    points = get_array_description(points_data, context, **convert)
    points["vtkClass"] = "vtkPoints"
    properties: dict[str, Any] = {"points": points}
    for key, cells in (("verts", dataset.GetVerts()), ("lines", dataset.GetLines()),
                       ("polys", dataset.GetPolys()), ("strips", dataset.GetStrips())):
        if cells is None or cells.GetNumberOfCells() == 0:
            continue
        properties[key] = get_array_description(_legacy_cells(cells), context)
        properties[key]["vtkClass"] = "vtkCellArray"
    properties["fields"] = []
    extract_required_fields(properties["fields"], parent, dataset, context,
                            requested_fields or ["Normals", "TCoords"])
    return {"parent": reference_id(parent), "id": dataset_id, "type": class_name(dataset),
            "properties": properties}


def install_polydata_serializer() -> None:
    """Serialize ``vtkPolyData`` with :func:`_polydata` from now on (call after trame-vtk's
    local-rendering protocol started: it registers its own serializers when it starts)."""
    from trame_vtk.modules.vtk.serializers.registry import register_instance_serializer

    register_instance_serializer("vtkPolyData", _polydata)
