"""What every estimator and index shares: scikit-learn's parameter protocol.

A class lists its parameters once, as the arguments of ``__init__``, each stored under
its own name; :class:`ParamsMixin` derives ``get_params``, ``set_params`` and a short
``repr`` from that signature, as scikit-learn's ``BaseEstimator`` does, without
importing scikit-learn. The rules a parameter must obey are stated next to it in the
class's ``_parameter_constraints`` (see :func:`ivfpq._validation.validate_params`).
"""

from __future__ import annotations

import inspect

import numpy as np

from ._validation import canonical_metric

__all__ = ["ParamsMixin", "MetricMixin"]


class ParamsMixin:
    """get_params / set_params / repr as scikit-learn defines them, without importing it.

    Examples
    --------
    >>> from ivfpq._base import ParamsMixin
    >>> class Scaler(ParamsMixin):
    ...     def __init__(self, factor=1.0, *, clip=False):
    ...         self.factor = factor
    ...         self.clip = clip
    >>> Scaler(factor=2.0)
    Scaler(factor=2.0)
    >>> Scaler().set_params(clip=True).get_params()
    {'clip': True, 'factor': 1.0}
    """

    @classmethod
    def _param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values() if p.name != "self")

    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; valid parameters: {valid}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = []
        for name in self._param_names():
            value = getattr(self, name)
            default = defaults.get(name, inspect.Parameter.empty)
            same = value is default or (
                not isinstance(value, np.ndarray) and not isinstance(default, np.ndarray)
                and value == default
            )
            if not same:
                shown = f"array{value.shape}" if isinstance(value, np.ndarray) else repr(value)
                changed.append(f"{name}={shown}")
        return f"{type(self).__name__}({', '.join(changed)})"


class MetricMixin:
    """``self._metric``: the canonical name of the ``metric`` parameter.

    Users may spell a metric any way :data:`ivfpq._validation.METRIC_ALIASES` allows
    ("sqeuclidean" for "l2", "inner_product" for "ip", ...); ``metric`` keeps their
    spelling (scikit-learn's rule: parameters are stored as given), and the code
    compares ``self._metric`` with the canonical names in ``_metrics``.

    Examples
    --------
    >>> from ivfpq import IVFFlat
    >>> IVFFlat(nlist=4, metric="inner_product")._metric
    'ip'
    """

    _metrics = ("l2", "ip")

    @property
    def _metric(self) -> str:
        return canonical_metric(self.metric, allowed=self._metrics)
