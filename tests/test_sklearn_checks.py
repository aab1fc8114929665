"""scikit-learn's estimator checks on DenseClassifier and DenseRegressor, for each solver in
float32 and float64."""

import os

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from denseprop.sklearn import DenseClassifier, DenseRegressor  # noqa: E402

ESTIMATORS = [cls(solver=solver, dtype=dtype)
              for cls in (DenseClassifier, DenseRegressor)
              for solver in ("adam", "sgd", "lbfgs")
              for dtype in ("float32", "float64")]

# The one check float32 stochastic solvers cannot meet: it compares fits on integer sample
# weights and on repeated rows with rtol 1e-7, below float32's resolution (eps 1.2e-7), and
# w * g rounds differently from g + g + ... Every solver passes it in float64 (its 15 rows
# make one full batch, so shuffling does not matter), and lbfgs in both (it trains in float64).
FLOAT32_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data":
        "float32 rounding: the check's rtol 1e-7 is below float32's resolution; passes in float64",
}


def expected_failures(estimator):
    return FLOAT32_FAILURES if estimator.dtype == "float32" and estimator.solver != "lbfgs" else {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_the_list_of_expected_failures_is_still_needed():
    """Each listed float32 failure still fails (else the list is stale and must shrink)."""
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data
    for cls in (DenseClassifier, DenseRegressor):
        for solver in ("adam", "sgd"):
            with pytest.raises(AssertionError, match="sample_weight"):
                check_sample_weight_equivalence_on_dense_data(cls.__name__, cls(dtype="float32", solver=solver))
