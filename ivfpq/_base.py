"""What every estimator and index shares: scikit-learn's parameter protocol.

A class lists its parameters once, as the arguments of ``__init__``, each stored under
its own name; :class:`ParamsMixin` derives ``get_params``, ``set_params`` and a short
``repr`` from that signature, as scikit-learn's ``BaseEstimator`` does, without
importing scikit-learn. The rules a parameter must obey are stated next to it in the
class's ``_parameter_constraints`` (see :func:`ivfpq._validation.validate_params`).
"""

from __future__ import annotations

import inspect
import sys

import numpy as np

from ._validation import Options, canonical_metric, check_is_fitted, validate_params

__all__ = ["ParamsMixin", "MetricMixin", "ClustererMixin"]

OUTPUTS = ("default", "pandas", "polars")


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


class ClustererMixin:
    """scikit-learn's clusterer and transformer protocol, without importing it.

    A subclass defines ``fit`` (setting ``cluster_centers_``) and ``_transform``; this
    adds ``fit_predict``, ``transform`` and ``fit_transform`` (whose output follows
    :meth:`set_output`), ``get_feature_names_out`` (``"<classname>0"``, ... one per
    cluster, as scikit-learn names them), and the tags scikit-learn's checks read.
    The output configuration lives where scikit-learn's ``clone`` copies it from.

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq import KMeans
    >>> model = KMeans(n_clusters=2, random_state=0).fit(np.array([[0.0], [1.0], [9.0], [10.0]]))
    >>> model.get_feature_names_out().tolist()
    ['kmeans0', 'kmeans1']
    >>> model.set_output(transform="default").transform([[0.0]]).shape
    (1, 2)
    """

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags, TransformerTags

        tags = Tags(
            estimator_type="clusterer",
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
        )
        tags.input_tags.sparse = False
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "cluster_centers_")

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X):
        """Distances from each row of ``X`` to every centroid, shape (n_samples, n_clusters)."""
        return self._wrap_output(self._transform(X), X)

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit, then :meth:`transform` ``X``."""
        return self._wrap_output(self.fit(X, sample_weight=sample_weight)._transform(X), X)

    def get_feature_names_out(self, input_features=None):
        """Names of the :meth:`transform` columns: the lowercase class name and the cluster index."""
        check_is_fitted(self, "cluster_centers_")
        if input_features is not None and len(input_features) != self.n_features_in_:
            raise ValueError(
                f"input_features should have length equal to n_features_in_ = {self.n_features_in_}, "
                f"got {len(input_features)}"
            )
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.cluster_centers_.shape[0])], dtype=object)

    def set_output(self, *, transform=None):
        """Output container of ``transform`` and ``fit_transform``.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None
            "default": a NumPy array; "pandas" / "polars": a data frame whose columns are
            :meth:`get_feature_names_out` (the library must be installed); None: unchanged
            (then scikit-learn's ``set_config(transform_output=...)`` applies, if set).
        """
        if transform is None:
            return self
        validate_params({"transform": transform}, {"transform": [Options(OUTPUTS)]})
        self._sklearn_output_config = {"transform": transform}
        return self

    def _wrap_output(self, out, X):
        kind = getattr(self, "_sklearn_output_config", {}).get("transform")
        if kind is None and "sklearn" in sys.modules:
            kind = sys.modules["sklearn"].get_config().get("transform_output", "default")
        if kind in (None, "default"):
            return out
        columns = list(self.get_feature_names_out())
        if kind == "pandas":
            import pandas as pd

            index = X.index if isinstance(X, pd.DataFrame) else None
            return pd.DataFrame(out, columns=columns, index=index)
        import polars as pl

        return pl.DataFrame(out, schema=columns, orient="row")
