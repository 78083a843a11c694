"""The only room of twin3d that imports ``pxr``: writing, reading and validating USD."""

from twin3d.usd.schema import register as _register_schema

# twin3d's codeless schema (Twin3DSensorAPI) must be known before USD builds its schema registry.
_register_schema()
