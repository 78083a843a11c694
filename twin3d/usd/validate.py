"""Run every USD validator we can reach and collect the failures (never raises on a failure).

Validators:

* ``pxr.UsdValidation``: every validator registered in usd-core (all plugins).
* ``usd-validation-nvidia`` (+ ``usd-profiles-nvidia``): NVIDIA's engine, in-process when
  installed beside twin3d (``pip install "twin3d[validate]"``).
* ``omniverse-asset-validator``: NVIDIA's older engine. It installs the same
  ``omni.asset_validator`` files as the package above, so it must live in its own environment;
  set ``TWIN3D_OAV_PYTHON`` to that environment's Python and twin3d runs it there.

Severities counted as failures: pxr ``Error`` and ``Warn``; NVIDIA ``ERROR``, ``FAILURE`` and
``WARNING``. Info-level messages are dropped.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pxr import Usd, UsdValidation

from twin3d._types import PathLike
from twin3d.usd.layer import open_stage

__all__ = ["OAV_ENV", "Failure", "ValidationReport", "validate_stage"]

#: environment variable naming a Python that has omniverse-asset-validator installed
OAV_ENV = "TWIN3D_OAV_PYTHON"
_RUNNER = Path(__file__).with_name("_nvidia_runner.py")
_FAILING = {"ERROR", "FAILURE", "WARNING"}


@dataclass(frozen=True)
class Failure:
    """One validator finding.

    Attributes:
        validator: ``pxr.UsdValidation``, ``usd-validation-nvidia`` or ``omniverse-asset-validator``.
        rule: the rule / validator name.
        prim: the prim path, ``(stage)`` or a layer.
        message: what is wrong.
        fix: the validator's suggested fix, if any.
        severity: the validator's severity word.
    """

    validator: str
    rule: str
    prim: str
    message: str
    fix: str = ""
    severity: str = "ERROR"

    def __str__(self) -> str:
        fix = f" (fix: {self.fix})" if self.fix else ""
        where = f" at {self.prim}" if self.prim else ""
        return f"[{self.validator}] {self.rule}{where}: {self.message}{fix}"


@dataclass
class ValidationReport:
    """What ran and what failed.

    Attributes:
        path: the validated file.
        ran: ``validator version`` strings for each validator that ran.
        skipped: ``validator: reason`` for each one that could not run.
        failures: every failing finding.
    """

    path: str
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no validator reported a failure."""
        return not self.failures


def _pxr(path: Path, report: ValidationReport) -> None:
    stage = Usd.Stage.Open(str(path))
    registry = UsdValidation.ValidationRegistry()
    validators = list(registry.GetOrLoadAllValidators())
    errors = UsdValidation.ValidationContext(validators).Validate(stage)
    report.ran.append(f"pxr.UsdValidation {'.'.join(map(str, Usd.GetVersion()))} "
                      f"({len(validators)} validators)")
    for err in errors:
        if err.HasNoError() or err.GetType() == UsdValidation.ValidationErrorType.Info:
            continue
        sites = [s for s in err.GetSites() if s.IsValid()]
        prim = ""
        for site in sites:
            if site.IsPrim():
                prim = str(site.GetPrim().GetPath())
                break
            if site.IsProperty():
                prim = str(site.GetProperty().GetPath())
                break
            if site.GetLayer():
                prim = site.GetLayer().identifier
        validator = err.GetValidator()
        rule = validator.GetMetadata().name if validator else err.GetName()
        report.failures.append(Failure("pxr.UsdValidation", rule, prim,
                                       " ".join(err.GetMessage().split()),
                                       severity=str(err.GetType()).rsplit(".", 1)[-1]))


def _add_nvidia(result: dict[str, object], report: ValidationReport) -> None:
    package = str(result["package"])
    report.ran.append(f"{package} {result['version']}")
    for issue in result["issues"]:  # type: ignore[attr-defined]
        if issue["severity"] in _FAILING:
            report.failures.append(Failure(package, issue["rule"], issue["prim"], issue["message"],
                                           issue["fix"], issue["severity"]))


def _nvidia_inprocess(path: Path, placeable: bool, report: ValidationReport) -> None:
    try:
        import usd_validation_nvidia  # noqa: F401
    except ImportError:
        report.skipped.append("usd-validation-nvidia: not installed "
                              "(pip install usd-validation-nvidia usd-profiles-nvidia)")
        return
    import logging

    from twin3d.usd import _nvidia_runner

    level = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        _add_nvidia(_nvidia_runner.issues(str(path), placeable), report)
    finally:
        logging.disable(level)


def _nvidia_subprocess(path: Path, placeable: bool, report: ValidationReport) -> None:
    python = os.environ.get(OAV_ENV)
    if not python:
        report.skipped.append(f"omniverse-asset-validator: set {OAV_ENV} to the Python of an "
                              "environment that has it (it cannot share twin3d's)")
        return
    cmd = [python, str(_RUNNER), str(path)] + (["--placeable"] if placeable else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except OSError as exc:
        report.skipped.append(f"omniverse-asset-validator: cannot run {python}: {exc.strerror}")
        return
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        report.failures.append(Failure("omniverse-asset-validator", "run", "",
                                       f"validator did not run: {tail}"))
        return
    _add_nvidia(result, report)


def validate_stage(path: PathLike, profile: str | None = None) -> ValidationReport:
    """Run every available validator on the USD file ``path``.

    Args:
        path: a USD file (``.usda``, ``.usdc``, ``.usd``, ``.usdz``).
        profile: ``"placeable"`` adds NVIDIA's ``minimal_placeable_visual`` feature rules.

    Raises:
        StageError: the file is missing or is not a USD stage.
    """
    p = Path(path)
    open_stage(p)  # a missing or unreadable file is an error, not a failed rule
    placeable = profile == "placeable"
    report = ValidationReport(str(p))
    _pxr(p, report)
    _nvidia_inprocess(p, placeable, report)
    _nvidia_subprocess(p, placeable, report)
    return report
