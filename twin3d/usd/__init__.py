"""The only room of twin3d that imports ``pxr``: writing, reading and validating USD."""
