"""lakelabel: enrich a data lake with Hugging Face model annotations, on Ray Data.

The public surface is this module's ``__all__``; everything under ``lakelabel.jobs`` and ``lakelabel.operators`` may
change between releases. Names are imported on first use, so ``import lakelabel`` (and the ``lakelabel`` command)
stays quick and loads neither Ray nor torch::

    import lakelabel

    job = lakelabel.load_job("job.yaml")
    print(lakelabel.plan(job))
    summary = lakelabel.run(job)

See ``docs/python-api.md``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("lakelabel")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

# name -> the module that defines it
_PUBLIC = {
    "load_job": "lakelabel.api",
    "plan": "lakelabel.api",
    "run": "lakelabel.api",
    "status": "lakelabel.api",
    "report": "lakelabel.api",
    "operator": "lakelabel.operators.factory",
    "annotate": "lakelabel.jobs.ray_adapter",
    "OutputStatus": "lakelabel.api",
    "Operator": "lakelabel.operators.core.base",
    "OperatorConfig": "lakelabel.operators.core.base",
    "Resources": "lakelabel.operators.core.base",
    "JobSpec": "lakelabel.jobs.spec",
    "Plan": "lakelabel.jobs.plan",
    "RunSummary": "lakelabel.jobs.console.summary",
    "SpecError": "lakelabel.jobs.spec",
    "JobFailedError": "lakelabel.jobs.errors",
    "ModelLoadError": "lakelabel.operators.core.base",
    "OptionError": "lakelabel.operators.core.base",
}

__all__ = [
    "JobFailedError",
    "JobSpec",
    "ModelLoadError",
    "Operator",
    "OperatorConfig",
    "OptionError",
    "OutputStatus",
    "Plan",
    "Resources",
    "RunSummary",
    "SpecError",
    "__version__",
    "annotate",
    "load_job",
    "operator",
    "plan",
    "report",
    "run",
    "status",
]

if TYPE_CHECKING:
    from lakelabel.api import OutputStatus, load_job, plan, report, run, status
    from lakelabel.jobs.console.summary import RunSummary
    from lakelabel.jobs.errors import JobFailedError
    from lakelabel.jobs.plan import Plan
    from lakelabel.jobs.ray_adapter import annotate
    from lakelabel.jobs.spec import JobSpec, SpecError
    from lakelabel.operators.core.base import ModelLoadError, Operator, OperatorConfig, OptionError, Resources
    from lakelabel.operators.factory import operator


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'lakelabel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
