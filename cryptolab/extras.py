"""cryptolab's optional extras: which one provides a missing module, and the installed version.

Some commands need an optional extra (``cryptolab report`` needs papermill, from
``cryptolab[reports]``). When its module is missing, :func:`missing_extra_hint`
turns the ``ModuleNotFoundError`` into one line naming the extra to install.
The extras and their packages are read from the installed distribution's
metadata (``Requires-Dist``), so ``pyproject.toml`` stays the only list.

Examples
--------
>>> extra_for("papermill"), extra_for("prometheus_client"), extra_for("numpy")
('reports', 'metrics', None)
>>> missing_extra_hint(ModuleNotFoundError("No module named 'papermill'", name="papermill"),
...                    "cryptolab report")
'cryptolab report needs the "reports" extra: pip install \\'cryptolab[reports]\\''
"""

from __future__ import annotations

import importlib.metadata
import re
from typing import Final

__all__ = ["DISTRIBUTION", "extra_for", "installed_version", "missing_extra_hint"]

#: The distribution whose extras are looked up.
DISTRIBUTION: Final = "cryptolab"


def _module_name(distribution: str) -> str:
    """The import name of a distribution, by the usual convention (``prometheus-client`` ->
    ``prometheus_client``)."""
    return re.sub(r"[-_.]+", "_", distribution).lower()


def extra_for(module: str, distribution: str = DISTRIBUTION) -> str | None:
    """The first extra of ``distribution`` (in its declared order) that installs ``module``.

    ``None`` when no extra does, or when ``distribution`` is not installed.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        meta = importlib.metadata.metadata(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    wanted = _module_name(module.split(".")[0])
    requirements = []
    for text in meta.get_all("Requires-Dist") or []:
        try:
            requirements.append(Requirement(text))
        except InvalidRequirement:
            continue
    for extra in meta.get_all("Provides-Extra") or []:
        for req in requirements:
            if (req.marker is not None and _module_name(req.name) == wanted
                    and req.marker.evaluate({"extra": extra})):
                return str(extra)
    return None


def missing_extra_hint(exc: ModuleNotFoundError, who: str) -> str | None:
    """One line saying which extra ``who`` needs, or ``None`` when no extra provides the module."""
    extra = extra_for(exc.name or "")
    if extra is None:
        return None
    return f"{who} needs the \"{extra}\" extra: pip install '{DISTRIBUTION}[{extra}]'"


def installed_version(distribution: str = DISTRIBUTION) -> str:
    """The installed version of ``distribution`` (``cryptolab.__version__`` for a source tree
    that is not installed).

    Examples
    --------
    >>> import cryptolab
    >>> installed_version() == cryptolab.__version__
    True
    """
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        import cryptolab

        return cryptolab.__version__
