"""Finite-element plumbing shared by the physics models: chunked assembly and SPD solvers.

Both physics models solve a symmetric positive-definite system ``A x = b`` for a few
right-hand sides (one per load case or unknown input). Which solver is fastest depends on the
size, so it is chosen by measurement (``benchmarks/fields.py``, figures in
``benchmarks/RESULTS.md``):

* ``"cholmod"``: sparse Cholesky (CHOLMOD from SuiteSparse, through scikit-sparse, METIS
  ordering). Fastest while the factor fits (115k P2 unknowns: 13 s and +0.7 GB against
  SuperLU's 105 s and +2.4 GB), but its fill grows faster than the system (408k unknowns,
  33M non-zeros: +3.9 GB);
* ``"amg"``: conjugate gradients preconditioned by smoothed-aggregation algebraic multigrid
  (pyamg), with the rigid-body modes as near-nullspace for elasticity and 3 × 3 nodal blocks.
  Memory grows linearly; the hierarchy is set up once and shared by every right-hand side;
* ``"superlu"``: SciPy's LU, the fallback when neither library is installed.

``"auto"`` takes CHOLMOD up to :data:`DIRECT_MAX_NNZ` non-zeros of ``A`` and AMG above it.

Assembly runs over chunks of elements (:func:`assemble`) so the basis-function tables of a
100k-element P2 mesh never sit in memory at once, with the quadrature order the bilinear form
needs rather than scikit-fem's default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from twin3d.errors import FieldError

__all__ = ["DIRECT_MAX_NNZ", "SOLVERS", "assemble", "available_solvers", "choose_solver",
           "rigid_body_modes", "solve_spd"]

FloatArray = npt.NDArray[np.float64]

#: The solvers :func:`solve_spd` knows, and ``"auto"``.
SOLVERS = ("auto", "cholmod", "amg", "superlu")
#: Largest system (non-zeros of ``A``) that ``"auto"`` factorises directly; above it the
#: factor's memory passes what a 100k-element build may use (measured: CHOLMOD +0.7 GB at
#: 9.1M non-zeros, +3.9 GB at 33.4M; AMG-CG +0.2 / +0.9 GB there).
DIRECT_MAX_NNZ = 24_000_000
#: Relative residual at which conjugate gradients stops.
CG_TOLERANCE = 1e-8
#: Most CG iterations before the solve is declared failed.
CG_MAX_ITERATIONS = 2000
#: Elements assembled at a time.
CHUNK = 12_000


def available_solvers() -> list[str]:
    """The solvers installed here, in :data:`SOLVERS` order (``"superlu"`` always)."""
    out = ["auto"]
    try:
        import sksparse.cholmod  # noqa: F401

        out.append("cholmod")
    except ImportError:
        pass
    try:
        import pyamg  # noqa: F401

        out.append("amg")
    except ImportError:
        pass
    return [*out, "superlu"]


def choose_solver(A: sp.spmatrix) -> str:
    """The solver ``"auto"`` picks for ``A``: see the module docstring."""
    have = available_solvers()
    if "cholmod" in have and (A.nnz <= DIRECT_MAX_NNZ or "amg" not in have):
        return "cholmod"
    if "amg" in have:
        return "amg"
    return "superlu"


def assemble(form: Any, mesh: Any, elem: Any, *, intorder: int | None = None,
             chunk: int = CHUNK, progress: Callable[[int], None] | None = None) -> sp.csr_matrix:
    """Assemble a bilinear form over all elements, a chunk of elements at a time.

    Args:
        form: a ``skfem.BilinearForm``.
        mesh: the ``skfem`` mesh.
        elem: the ``skfem`` element.
        intorder: quadrature order (scikit-fem's default is twice the element degree; a
            stiffness form needs only twice the degree of the gradients).
        chunk: elements per chunk (bounds the memory of the basis tables).
        progress: called with the number of elements done after each chunk.

    Returns:
        (n_dofs, n_dofs) CSR matrix.
    """
    from skfem import Basis, asm

    dofs = None
    total: sp.csr_matrix | None = None
    for start in range(0, mesh.nelements, chunk):
        idx = np.arange(start, min(start + chunk, mesh.nelements))
        basis = Basis(mesh, elem, elements=idx, intorder=intorder, dofs=dofs,
                      disable_doflocs=True)
        dofs = basis.dofs
        part = sp.csr_matrix(asm(form, basis))
        total = part if total is None else total + part
        if progress is not None:
            progress(int(idx[-1]) + 1)
    assert total is not None  # a mesh has elements
    return total


def rigid_body_modes(mesh: Any, n_dofs: int) -> FloatArray:
    """The six rigid-body motions of a P2 vector field (skfem's nodal numbering).

    scikit-fem numbers the unknowns of ``ElementVector(ElementTetP2())`` node by node:
    ``3 i + c`` is component ``c`` of node ``i``, vertices first, then edge midpoints.

    Returns:
        (n_dofs, 6) float64: three translations and three rotations about the centroid.
    """
    p = mesh.p.T
    nodes = np.concatenate([p, p[mesh.edges.T].mean(axis=1)])
    if 3 * len(nodes) != n_dofs:
        raise FieldError(f"{n_dofs} unknowns do not match {len(nodes)} P2 nodes")
    x, y, z = (nodes - nodes.mean(axis=0)).T
    B = np.zeros((len(nodes), 3, 6))
    for c in range(3):
        B[:, c, c] = 1.0
    B[:, 0, 3], B[:, 1, 3] = -y, x     # about z
    B[:, 1, 4], B[:, 2, 4] = -z, y     # about x
    B[:, 2, 5], B[:, 0, 5] = -x, z     # about y
    return B.reshape(n_dofs, 6)


def solve_spd(A: sp.spmatrix, rhs: npt.ArrayLike, *, method: str = "auto",
              near_nullspace: FloatArray | None = None, block_size: int = 1,
              progress: Callable[[int], None] | None = None) -> FloatArray:
    """Solve ``A x = b`` for each column of ``rhs`` (``A`` symmetric positive definite).

    Args:
        A: (n, n) sparse SPD matrix.
        rhs: (n,) or (n, k) right-hand sides.
        method: one of :data:`SOLVERS`.
        near_nullspace: (n, m) the modes AMG must represent well (rigid-body motions for
            elasticity); by default the constant.
        block_size: unknowns per node that AMG aggregates together (3 for elasticity), when
            ``n`` is a multiple of it.
        progress: called with the number of right-hand sides done.

    Returns:
        (n,) or (n, k) float64 solution, as ``rhs``.

    Raises:
        FieldError: an unknown or uninstalled method, or CG that did not converge.
    """
    b = np.asarray(rhs, dtype=np.float64)
    B2 = b.reshape(len(b), -1)
    if method not in SOLVERS:
        raise FieldError(f"unknown solver {method!r}; use one of {', '.join(SOLVERS)}")
    if method == "auto":
        method = choose_solver(A)
    elif method not in available_solvers():
        raise FieldError(f"solver {method!r} is not installed here (installed: "
                         f"{', '.join(available_solvers()[1:])})")
    out = np.empty_like(B2)
    if method == "cholmod":
        from sksparse.cholmod import cholesky

        factor = cholesky(sp.csc_matrix(A), ordering_method="metis")
        for j in range(B2.shape[1]):
            out[:, j] = factor(B2[:, j])
            if progress is not None:
                progress(j + 1)
    elif method == "superlu":
        from scipy.sparse.linalg import splu

        lu = splu(sp.csc_matrix(A))
        for j in range(B2.shape[1]):
            out[:, j] = lu.solve(B2[:, j])
            if progress is not None:
                progress(j + 1)
    else:
        _solve_amg(sp.csr_matrix(A), B2, out, near_nullspace, block_size, progress)
    return out.reshape(b.shape)


def _solve_amg(A: sp.csr_matrix, B2: FloatArray, out: FloatArray,
               near_nullspace: FloatArray | None, block_size: int,
               progress: Callable[[int], None] | None) -> None:
    import pyamg

    M: Any = A
    if block_size > 1 and A.shape[0] % block_size == 0:
        M = A.tobsr(blocksize=(block_size, block_size))
    ml = pyamg.smoothed_aggregation_solver(
        M, B=near_nullspace, strength=("symmetric", {"theta": 0.0}), max_coarse=1000,
        coarse_solver="splu")
    for j in range(B2.shape[1]):
        norm = float(np.linalg.norm(B2[:, j]))
        if norm == 0.0:
            out[:, j] = 0.0
        else:
            residuals: list[float] = []
            out[:, j] = ml.solve(B2[:, j], tol=CG_TOLERANCE, accel="cg",
                                 maxiter=CG_MAX_ITERATIONS, residuals=residuals)
            if residuals[-1] > 10 * CG_TOLERANCE * norm:
                raise FieldError(
                    f"the iterative solver stopped at relative residual "
                    f"{residuals[-1] / norm:.1e} after {len(residuals) - 1} iterations: the "
                    "part may be barely held (check the fixed regions) or badly meshed "
                    "(raise mesh_quality)")
        if progress is not None:
            progress(j + 1)
