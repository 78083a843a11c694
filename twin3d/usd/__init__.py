"""The only room of twin3d that imports ``pxr``: writing, reading and validating USD.

Modules, by job:

* ``layer``: open and save stages and layers (one-line errors, atomic saves).
* ``asset``: CAD parts -> a USD asset (``twin3d convert``).
* ``meshes``: a stage's meshes as numpy arrays in world space.
* ``bind``: ``twin3d bind``, sensors checked against the stage and authored into it;
  ``bindings``: the bindings of a stage read back; ``info``: ``twin3d info``'s text.
* ``live``: the live layer, a twin's current state; ``timesamples``: recordings of values,
  motion, fields and deformed shapes as USD time samples in value clips; ``playback``: a
  stage or recording as meshes in frames, field colours and poses (the MCAP export's scene).
* ``spec``, ``overlay``, ``material``: what the live layer and recordings both write
  (``Sdf`` specs, field overlays on meshes, the display-colour preview material).
* ``motion``: property bindings read back and posed; ``articulation``: a URDF robot's
  UsdPhysics bodies, joints and joint bindings; ``surface``: display surfaces;
  ``scenario``: what-if scenarios as a variant set.
* ``camera``: USD cameras read as keyframes, camera paths written as cameras.
* ``validate``: every USD validator we can reach; ``schema``: the codeless ``Twin3DSensorAPI``.
"""

from twin3d.usd.schema import register as _register_schema

# twin3d's codeless schema (Twin3DSensorAPI) must be known before USD builds its schema registry.
_register_schema()
