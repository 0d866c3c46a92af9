"""The parameter-constraint vocabulary, validate_params and canonical_metric."""

import re

import numpy as np
import pytest

from ivfpq import HNSW, IVFFlat, IVFPQ, ProductQuantizer, TileEncoder
from ivfpq._validation import (
    METRIC_ALIASES,
    Interval,
    Metric,
    Options,
    canonical_metric,
    validate_params,
)


def _error(value, constraints):
    """The exception validate_params raises for parameter ``p`` = ``value``."""
    with pytest.raises((TypeError, ValueError)) as info:
        validate_params({"p": value}, {"p": constraints})
    return info.type, str(info.value)


@pytest.mark.parametrize("constraints, good", [
    ([Interval(int, 1, None)], [1, 7, np.int64(3), 10**12]),
    ([Interval(int, 1, 16)], [1, 16]),
    ([Interval(int, None, 0)], [-5, 0]),
    ([Interval(float, 0, 1, closed="right")], [1e-9, 0.5, 1, 1.0, np.float32(0.25)]),
    ([Interval(float, 0, None, closed="neither")], [1e-300, 3]),
    ([Options(("kmeans", "tile"))], ["kmeans", "tile"]),
    ([Metric(("l2", "ip"))], ["l2", "sqeuclidean", "euclidean", "ip", "inner_product", "dot"]),
    ([None], [None]),
    (["boolean"], [True, False, np.True_]),
    (["array-like"], [[1, 2], (1,), np.zeros(3)]),
    (["random_state"], [None, 0, 5, np.random.default_rng(0), np.random.RandomState(0)]),
    ([callable], [len, lambda x: x]),
    ([dict], [{}, {"a": 1}]),
    ([Interval(int, 1, None), Options(("auto",)), None], [1, "auto", None]),
])
def test_every_constraint_accepts_what_it_names(constraints, good):
    for value in good:
        assert validate_params({"p": value}, {"p": constraints}) == {"p": value}


@pytest.mark.parametrize("constraints, value, error, message", [
    ([Interval(int, 1, None)], 0, ValueError, "p must be an integer >= 1, got 0"),
    ([Interval(int, 1, None)], 2.0, TypeError, "p must be an integer >= 1, got 2.0 (float)"),
    ([Interval(int, 1, None)], True, TypeError, "p must be an integer >= 1, got True (bool)"),
    ([Interval(int, 1, 16)], 17, ValueError, "p must be an integer in [1, 16], got 17"),
    ([Interval(int, None, 0)], 1, ValueError, "p must be an integer <= 0, got 1"),
    ([Interval(int, None, None)], "3", TypeError, "p must be an integer, got '3' (str)"),
    ([Interval(float, 0, 1, closed="right")], 0, ValueError, "p must be a finite number in (0, 1], got 0"),
    ([Interval(float, 0, 1, closed="left")], 1.0, ValueError, "p must be a finite number in [0, 1), got 1.0"),
    ([Interval(float, 0, None, closed="neither")], float("inf"), ValueError,
     "p must be a finite number > 0, got inf"),
    ([Interval(float, 0, None)], float("nan"), ValueError, "p must be a finite number >= 0, got nan"),
    ([Interval(float, None, 1, closed="neither")], 1, ValueError, "p must be a finite number < 1, got 1"),
    ([Options(("kmeans", "tile"))], "opq", ValueError, "p must be one of 'kmeans', 'tile', got 'opq'"),
    ([Options(("kmeans", "tile"))], 3, TypeError, "p must be one of 'kmeans', 'tile', got 3 (int)"),
    ([Options({"b", "a"})], "c", ValueError, "p must be one of 'a', 'b', got 'c'"),
    ([Options(("auto",))], "all", ValueError, "p must be 'auto', got 'all'"),
    ([Metric(("l2", "ip"))], "cosine", ValueError,
     "p must be one of 'l2', 'ip' (or an alias: 'sqeuclidean', 'euclidean', 'inner_product', "
     "'dot'), got 'cosine'"),
    ([Metric(("l2", "ip"))], 2, TypeError, "p must be one of 'l2', 'ip'"),
    ([None], 0, TypeError, "p must be None, got 0 (int)"),
    (["boolean"], 1, TypeError, "p must be True or False, got 1 (int)"),
    (["boolean"], "yes", TypeError, "p must be True or False, got 'yes' (str)"),
    (["array-like"], 3, TypeError, "p must be an array-like, got 3 (int)"),
    (["random_state"], -1, ValueError,
     "p must be None, an int >= 0, a numpy Generator or a numpy RandomState, got -1"),
    (["random_state"], "seed", TypeError, "p must be None, an int >= 0"),
    ([callable], 3, TypeError, "p must be a callable, got 3 (int)"),
    ([dict], [], TypeError, "p must be an instance of dict, got [] (list)"),
    ([Interval(int, 1, None), Options(("auto",)), None], 0, ValueError,
     "p must be an integer >= 1, 'auto' or None, got 0"),
    ([Interval(int, 1, None), Options(("auto",)), None], 1e5, TypeError,
     "p must be an integer >= 1, 'auto' or None, got 100000.0 (float)"),
    ([Options(("auto",)), "boolean"], 1, TypeError, "p must be one of 'auto', True or False, got 1 (int)"),
    ([Interval(int, 1, None), None], 0, ValueError, "p must be an integer >= 1 or None, got 0"),
])
def test_errors_name_the_parameter_the_value_and_what_is_accepted(constraints, value, error, message):
    raised, text = _error(value, constraints)
    assert raised is error
    assert text.startswith(message), text


def test_a_bare_constraint_stands_for_a_list_of_one_and_long_values_are_cut():
    assert validate_params({"p": 3}, {"p": Interval(int, 1, None)}) == {"p": 3}
    _, text = _error("x" * 200, [Options(("a",))])
    assert len(text) < 120 and text.endswith("...")


def test_objects_are_read_by_attribute_and_the_first_bad_parameter_is_named():
    class Model:
        k, metric = 0, "l2"

    with pytest.raises(ValueError, match="^k must be an integer >= 1, got 0$"):
        validate_params(Model(), {"metric": [Metric()], "k": [Interval(int, 1, None)]})
    with pytest.raises(AttributeError):
        validate_params(Model(), {"missing": [None]})
    with pytest.raises(KeyError):
        validate_params({}, {"missing": [None]})


def test_mistakes_in_the_constraints_themselves():
    with pytest.raises(ValueError, match="unknown constraint 'integer'"):
        validate_params({"p": 1}, {"p": ["integer"]})
    with pytest.raises(TypeError, match="not a parameter constraint"):
        validate_params({"p": 1}, {"p": [3]})
    with pytest.raises(TypeError, match="Interval type must be int or float"):
        Interval(str, 0, 1)
    with pytest.raises(ValueError, match="closed must be"):
        Interval(int, 0, 1, closed="open")
    with pytest.raises(ValueError, match="reversed"):
        Interval(int, 2, 1)
    with pytest.raises(ValueError, match="at least one value"):
        Options(())
    with pytest.raises(ValueError, match="unknown canonical metric"):
        Metric(("manhattan",))


@pytest.mark.parametrize("canonical, aliases", list(METRIC_ALIASES.items()))
def test_canonical_metric_maps_every_spelling(canonical, aliases):
    assert canonical in aliases
    for alias in aliases:
        assert canonical_metric(alias) == canonical


def test_canonical_metric_errors():
    assert canonical_metric("dot", allowed=("l2", "ip")) == "ip"
    with pytest.raises(ValueError, match=re.escape("metric must be one of 'l2', 'ip' (or an alias")):
        canonical_metric("cosine", allowed=("l2", "ip"))
    with pytest.raises(ValueError, match="distance must be one of 'l2', 'cosine'"):
        canonical_metric("L2", name="distance", allowed=("l2", "cosine"))
    with pytest.raises(TypeError, match=r"metric must be one of .*, got None \(NoneType\)"):
        canonical_metric(None)


ESTIMATORS = [ProductQuantizer(M=4), TileEncoder(), IVFFlat(nlist=4), IVFPQ(nlist=4, M=4), HNSW()]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_each_class_constrains_exactly_its_parameters(estimator):
    assert sorted(estimator._parameter_constraints) == estimator._param_names()
    validate_params(estimator, estimator._parameter_constraints)  # the defaults are valid


@pytest.mark.parametrize("make", [
    lambda metric: IVFFlat(nlist=4, metric=metric, random_state=0),
    lambda metric: IVFPQ(nlist=4, M=4, nbits=4, metric=metric, random_state=0),
    lambda metric: HNSW(M=8, metric=metric, random_state=0),
], ids=["IVFFlat", "IVFPQ", "HNSW"])
def test_indexes_take_every_spelling_of_a_metric_alike(make):
    X = np.random.default_rng(0).standard_normal((400, 8)).astype(np.float32)
    results = {}
    for metric in ("l2", "sqeuclidean", "euclidean", "ip", "inner_product", "dot"):
        index = make(metric)
        if hasattr(index, "train"):
            index.train(X)
        index.add(X)
        results[metric] = index.search(X[:5], k=3)
        assert index.metric == metric  # kept as given, as scikit-learn requires
    for alias, canonical in (("sqeuclidean", "l2"), ("euclidean", "l2"),
                             ("inner_product", "ip"), ("dot", "ip")):
        for got, expected in zip(results[alias], results[canonical]):
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="metric must be one of 'l2', 'ip'"):
        index = make("cosine")
        index.train(X) if hasattr(index, "train") else index.add(X)


def test_product_quantizer_takes_metric_aliases():
    X = np.random.default_rng(1).standard_normal((600, 8)).astype(np.float32)
    pq = ProductQuantizer(M=4, nbits=4, metric="inner_product", random_state=0).fit(X)
    reference = ProductQuantizer(M=4, nbits=4, metric="ip", random_state=0).fit(X)
    codes = pq.encode(X)
    for got, expected in zip(pq.search(codes, X[:4], k=5), reference.search(codes, X[:4], k=5)):
        np.testing.assert_array_equal(got, expected)


def test_check_array_returns_a_ready_array_itself_and_still_refuses_nan():
    from ivfpq._validation import check_array

    Q = np.ones((2, 3), dtype=np.float32)
    assert check_array(Q, "Q", dtype="float32") is Q
    assert check_array(Q, "Q", dtype="float32", copy=True) is not Q
    assert check_array(Q, "Q", dtype="float64").dtype == np.float64
    assert check_array(Q.astype(">f4"), "Q", dtype="float32").dtype.isnative  # not "ready"
    Q[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"Q contains NaN or infinity \(1 NaN, 0 inf\)"):
        check_array(Q, "Q", dtype="float32")
    with pytest.raises(ValueError, match="at least 3 samples"):
        check_array(np.ones((2, 3)), "Q", min_rows=3)
