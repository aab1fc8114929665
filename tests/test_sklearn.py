"""DenseClassifier and DenseRegressor: scikit-learn's meanings (checked against MLPClassifier
and MLPRegressor step for step), targets, fitted attributes, warm starts and partial_fit,
class weights, threads, real uses (pipelines, searches, pickling, metadata routing, pandas)
and bad input."""

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import joblib  # noqa: E402
from sklearn import clone, config_context  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.datasets import load_iris, make_classification, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_val_score, cross_validate  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.class_weight import compute_sample_weight  # noqa: E402

import denseprop as dp  # noqa: E402
from denseprop.sklearn import DenseClassifier, DenseRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(hidden_layer_sizes=(16, 8), random_state=0)


def classes3(n=200, seed=0):
    return make_classification(n, 6, n_informative=4, n_classes=3, random_state=seed)


def regression(n=200, n_targets=1, seed=0):
    X, y = make_regression(n, 6, n_targets=n_targets, noise=1.0, random_state=seed)
    return X, y / 100


def params(est):
    return est.coefs_ + est.intercepts_


def max_diff(a, b):
    return max(float(np.abs(p - q).max()) for p, q in zip(params(a), params(b)))


# --------------------------------------------------------------------------------------
# The same meanings as scikit-learn's MLP: same initialisation, loss scaling, alpha,
# sample-weight rule and schedules give the same weights (float64, rows in order).

SAME_AS_SKLEARN = [
    ("sgd", dict(momentum=0.9, batch_size=32, alpha=1e-2)),
    ("sgd", dict(momentum=0.0, batch_size=50, learning_rate="invscaling", learning_rate_init=0.05)),
    ("sgd", dict(momentum=0.5, nesterovs_momentum=False, batch_size=64, learning_rate="adaptive",
                 learning_rate_init=0.05, n_iter_no_change=2)),
    ("adam", dict(batch_size=32, alpha=1e-2, epsilon=1e-14)),
    ("lbfgs", dict(alpha=1e-2, max_iter=10)),
]


@pytest.mark.parametrize("solver,extra", SAME_AS_SKLEARN)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_weights_match_scikit_learn_step_for_step(solver, extra, weighted, task):
    X, y = classes3() if task == "classifier" else regression()
    ours_cls, theirs_cls = (DenseClassifier, MLPClassifier) if task == "classifier" else (DenseRegressor, MLPRegressor)
    if weighted and not hasattr(MLPRegressor, "set_fit_request"):
        pytest.skip("MLPClassifier/MLPRegressor take sample_weight from scikit-learn 1.7")
    kw = {**SMALL, "solver": solver, "shuffle": False, "max_iter": 30, **extra}
    fit = {"sample_weight": np.random.default_rng(0).integers(0, 4, len(y)).astype(float)} if weighted else {}
    ours = ours_cls(dtype="float64", **kw).fit(X, y, **fit)
    theirs = theirs_cls(**kw).fit(X, y, **fit)
    # Adam's epsilon enters after (PyTorch) or before (scikit-learn) the bias correction:
    # with epsilon 1e-14 that difference is below 1e-8.
    assert max_diff(ours, theirs) < (1e-7 if solver == "adam" else 1e-12)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    # loss_: the data part is exact; the L2 part uses the epoch's final weights.
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-3 if solver != "lbfgs" else 1e-12)


def test_adam_with_default_epsilon_stays_close_to_scikit_learn():
    X, y = classes3()
    kw = dict(SMALL, shuffle=False, max_iter=30, batch_size=32)
    ours = DenseClassifier(dtype="float64", **kw).fit(X, y)
    theirs = MLPClassifier(**kw).fit(X, y)
    # Only weights whose gradients are near epsilon move differently.
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=0.01)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=0.02)


def test_loss_is_scikit_learns_mean_over_outputs_for_several_outputs():
    X, y = regression(n_targets=3)
    kw = dict(SMALL, solver="sgd", learning_rate_init=1e-12, max_iter=1, alpha=0.0, shuffle=False)
    ours = DenseRegressor(dtype="float64", **kw).fit(X, y)
    theirs = MLPRegressor(**kw).fit(X, y)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-12)


def test_loss_includes_the_l2_term_evaluated_with_the_final_weights():
    X, y = regression(n=100)
    est = DenseRegressor(dtype="float64", solver="sgd", alpha=0.5, batch_size=30, max_iter=3, **SMALL).fit(X, y)
    data_loss = est.network_.evaluate(X, y) / 1.0  # mean over rows of 0.5 * r^2 (one output)
    sq = sum(float((w ** 2).sum()) for w in est.coefs_)
    n_batches = 4  # ceil(100 / 30)
    # The epoch's data loss is measured during the epoch, so only the penalty is exact here.
    penalty = est.loss_ - data_loss
    assert penalty == pytest.approx(0.5 * 0.5 * sq * n_batches / 100, rel=0.2)
    assert est.loss_curve_[-1] == est.loss_


def test_early_stopping_matches_scikit_learn_and_restores_the_best_weights():
    X, y = regression()
    kw = dict(SMALL, shuffle=False, max_iter=300, early_stopping=True, epsilon=1e-14, n_iter_no_change=3,
              learning_rate_init=0.01)
    ours = DenseRegressor(dtype="float64", **kw).fit(X, y)
    theirs = MLPRegressor(**kw).fit(X, y)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-6, atol=1e-8)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, abs=1e-8)
    assert ours.n_iter_ == theirs.n_iter_ < 300
    assert max_diff(ours, theirs) < 1e-6
    assert ours.best_loss_ is None
    assert len(ours.validation_loss_curve_) == ours.n_iter_ == len(ours.validation_scores_)
    assert all(np.isfinite(ours.validation_loss_curve_))
    # The restored weights are those of the best epoch, not the last.
    assert np.argmax(ours.validation_scores_) < ours.n_iter_ - 1


def test_validation_loss_curve_is_the_held_out_loss_in_scikit_learns_scale():
    X, y = regression(n=300, n_targets=2)
    est = DenseRegressor(dtype="float64", early_stopping=True, validation_fraction=0.5, max_iter=1,
                         **SMALL).fit(X, y)
    # One epoch: the best weights are the last ones. The held-out half is every row not in
    # the training half: find it from the split's rows through their losses.
    rows = est.network_.predict(X) - y
    per_row = 0.5 * (rows ** 2).mean(axis=1)
    curve = est.validation_loss_curve_[0]
    # The held-out mean lies between the means of the best and worst 150 rows.
    ordered = np.sort(per_row)
    assert ordered[:150].mean() <= curve <= ordered[150:].mean()


def test_initialisation_is_glorot_uniform_weights_and_biases_from_random_state():
    X, y = classes3()
    for activation, factor in (("relu", 6.0), ("logistic", 2.0)):
        kw = dict(SMALL, solver="sgd", learning_rate_init=1e-300, max_iter=1, activation=activation)
        ours = DenseClassifier(dtype="float64", **kw).fit(X, y)
        theirs = MLPClassifier(**kw).fit(X, y)
        assert max_diff(ours, theirs) == 0.0
        bound = np.sqrt(factor / (6 + 16))
        assert np.abs(ours.coefs_[0]).max() <= bound and np.abs(ours.intercepts_[0]).max() <= bound


# --------------------------------------------------------------------------------------
# Targets and fitted attributes

FITTED = ["classes_", "n_features_in_", "n_iter_", "t_", "loss_", "loss_curve_", "best_loss_",
          "validation_scores_", "best_validation_score_", "coefs_", "intercepts_", "n_layers_", "n_outputs_",
          "out_activation_", "validation_loss_curve_", "network_"]


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_fitted_attributes(solver):
    X, y = classes3()
    est = DenseClassifier(solver=solver, max_iter=20, **SMALL).fit(X, y)
    for name in FITTED:
        assert hasattr(est, name), name
    assert isinstance(est.network_, dp.Network)
    assert est.coefs_ is est.network_.weights and est.intercepts_ is est.network_.biases
    assert [c.shape for c in est.coefs_] == [(6, 16), (16, 8), (8, 3)]
    assert [b.shape for b in est.intercepts_] == [(16,), (8,), (3,)]
    assert est.n_layers_ == 4 and est.n_outputs_ == 3 and est.out_activation_ == "softmax"
    assert 1 <= est.n_iter_ <= 20 and len(est.loss_curve_) >= 1
    assert est.loss_ == est.loss_curve_[-1] and est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.validation_loss_curve_ is None


def test_binary_string_labels():
    X, y = make_classification(120, 4, random_state=0)
    labels = np.array(["no", "yes"])[y]
    est = DenseClassifier(**SMALL).fit(X, labels)
    assert est.out_activation_ == "logistic" and est.n_outputs_ == 1
    assert list(est.classes_) == ["no", "yes"]
    assert set(est.predict(X)) <= {"no", "yes"}
    p = est.predict_proba(X)
    assert p.shape == (120, 2) and np.allclose(p.sum(axis=1), 1)
    assert np.all((p > 0) & (p < 1))
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(p), rtol=1e-6)
    assert est.score(X, labels) > 0.8


def test_multiclass():
    X, y = load_iris(return_X_y=True)
    est = make_pipeline(StandardScaler(), DenseClassifier(random_state=0)).fit(X, y)
    assert est.score(X, y) > 0.95
    assert est.predict_proba(X).shape == (150, 3)
    assert est[-1].out_activation_ == "softmax"


def test_multilabel():
    X, Y = make_multilabel_classification(200, 8, n_classes=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    est = DenseClassifier(max_iter=300, **SMALL).fit(X, Y)
    assert est.out_activation_ == "logistic" and est.n_outputs_ == 4
    pred = est.predict(X)
    assert pred.shape == (200, 4) and set(np.unique(pred)) <= {0, 1}
    assert est.predict_proba(X).shape == (200, 4)
    theirs = MLPClassifier(max_iter=300, **SMALL).fit(X, Y)
    assert est.score(X, Y) >= theirs.score(X, Y) - 0.05  # exact-match accuracy (0.5 on both)
    assert (pred == Y).mean() > 0.75


@pytest.mark.parametrize("n_targets", [1, 3])
def test_regression_single_and_multi_output(n_targets):
    X, y = regression(n_targets=n_targets)
    est = make_pipeline(StandardScaler(), DenseRegressor(max_iter=400, **SMALL)).fit(X, y)
    pred = est.predict(X)
    assert pred.shape == y.shape and pred.dtype == np.float64
    assert est.score(X, y) > 0.9
    assert est[-1].out_activation_ == "identity"


@pytest.mark.parametrize("loss", ["absolute_error", "huber"])
def test_other_regression_losses(loss):
    X, y = regression()
    est = make_pipeline(StandardScaler(), DenseRegressor(loss=loss, max_iter=400, **SMALL)).fit(X, y)
    assert est[-1].network_.loss == {"absolute_error": "mae", "huber": "huber"}[loss]
    assert est.score(X, y) > 0.8


def test_poisson_is_refused_with_a_clear_message():
    X, y = regression()
    with pytest.raises(ValueError, match="poisson.*not supported"):
        DenseRegressor(loss="poisson").fit(X, np.abs(y))


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu", "gelu", "elu", "silu"])
def test_activations_scikit_learn_names_and_denseprop_ones(activation):
    X, y = classes3()
    est = DenseClassifier(activation=activation, max_iter=5, **SMALL).fit(X, y)
    expected = "sigmoid" if activation == "logistic" else activation
    assert est.network_.activations[:-1] == [expected, expected]


def test_no_hidden_layer():
    X, y = classes3()
    est = DenseClassifier(hidden_layer_sizes=(), max_iter=50, random_state=0).fit(X, y)
    assert est.n_layers_ == 2 and est.coefs_[0].shape == (6, 3)


@pytest.mark.parametrize("backend", ["numpy"])
def test_numpy_backend_gives_the_cpp_result(backend):
    X, y = classes3()
    kw = dict(SMALL, max_iter=10, dtype="float64", n_threads=1)
    cpp = DenseClassifier(**kw).fit(X, y)
    ref = DenseClassifier(backend=backend, **kw).fit(X, y)
    assert max_diff(cpp, ref) < 1e-9


def test_dtype_float32_and_float64():
    X, y = classes3()
    for dtype in ("float32", "float64"):
        est = DenseClassifier(dtype=dtype, max_iter=5, **SMALL).fit(X, y)
        assert est.coefs_[0].dtype == np.dtype(dtype)
        assert est.predict_proba(X).dtype == np.dtype(dtype)


def test_lbfgs_trains_in_float64_and_stores_the_network_dtype():
    X, y = classes3()
    kw = dict(SMALL, solver="lbfgs", max_iter=30)
    single = DenseClassifier(dtype="float32", **kw).fit(X, y)
    double = DenseClassifier(dtype="float64", **kw).fit(X.astype(np.float32), y)
    assert single.coefs_[0].dtype == np.float32 and double.coefs_[0].dtype == np.float64
    # The same float64 optimisation, from the initial weights rounded to float32 or not.
    assert single.loss_ == pytest.approx(double.loss_, rel=1e-3)
    assert single.score(X, y) == pytest.approx(double.score(X, y), abs=0.01)


@pytest.mark.parametrize("cls", [DenseClassifier, DenseRegressor])
def test_a_rows_outputs_do_not_depend_on_a_small_calls_other_rows(cls):
    X = 3 * np.random.default_rng(0).uniform(size=(20, 3))
    est = cls(random_state=1, max_iter=20).fit(X, (X[:, 0] > 1.5).astype(int))
    method = est.predict_proba if cls is DenseClassifier else est.predict
    whole = method(X)
    np.testing.assert_array_equal(np.vstack([method(row[None]) for row in X]).reshape(whole.shape), whole)


def test_fit_is_reproducible_with_random_state():
    X, y = classes3()
    a = DenseClassifier(max_iter=20, **SMALL).fit(X, y)
    b = DenseClassifier(max_iter=20, **SMALL).fit(X, y)
    assert max_diff(a, b) == 0.0


def test_loss_curve_stops_when_training_loss_stops_improving():
    X, y = classes3()
    est = DenseClassifier(max_iter=5000, tol=1e-2, n_iter_no_change=3, **SMALL).fit(X, y)
    assert est.n_iter_ < 5000
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        DenseClassifier(max_iter=2, **SMALL).fit(X, y)


def test_n_iter_no_change_may_be_infinite():
    X, y = classes3()
    est = DenseClassifier(max_iter=30, tol=1.0, n_iter_no_change=np.inf, **SMALL).fit(X, y)
    assert est.n_iter_ == 30


# --------------------------------------------------------------------------------------
# warm_start and partial_fit keep the optimizer's state

@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_warm_start_continues_weights_and_optimizer_state(solver):
    X, y = classes3()
    kw = dict(SMALL, solver=solver, n_iter_no_change=1000)
    whole = DenseClassifier(max_iter=8, **kw).fit(X, y)
    parts = DenseClassifier(max_iter=3, warm_start=True, **kw).fit(X, y)
    parts.set_params(max_iter=5).fit(X, y)
    assert max_diff(whole, parts) == 0.0
    assert parts.t_ == whole.t_ and parts.n_iter_ == 5


def test_warm_start_false_starts_over():
    X, y = classes3()
    est = DenseClassifier(max_iter=5, **SMALL)
    first = [p.copy() for p in params(est.fit(X, y))]
    again = params(est.fit(X, y))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_partial_fit_is_one_epoch_and_continues():
    X, y = classes3()
    kw = dict(SMALL, n_iter_no_change=1000)
    whole = DenseClassifier(max_iter=4, **kw).fit(X, y)
    inc = DenseClassifier(**kw)
    for _ in range(4):
        inc.partial_fit(X, y, classes=[0, 1, 2])
    assert max_diff(whole, inc) == 0.0
    assert inc.n_iter_ == 1 and inc.t_ == 4 * len(y)


def test_partial_fit_regressor_on_blocks():
    X, y = regression(n=400)
    est = DenseRegressor(**SMALL)
    for epoch in range(100):
        for s in range(0, 400, 100):
            est.partial_fit(X[s:s + 100], y[s:s + 100])
    assert est.score(X, y) > 0.9


def test_partial_fit_rules():
    X, y = classes3()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        DenseClassifier().partial_fit(X, y)
    est = DenseClassifier(**SMALL).partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert list(est.classes_) == [0, 1, 2] and est.out_activation_ == "softmax"
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        est.partial_fit(X, y + 1)
    assert not hasattr(DenseClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(DenseRegressor(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="early_stopping"):
        DenseClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_warm_start_may_switch_early_stopping():
    X, y = classes3()
    est = DenseClassifier(warm_start=True, max_iter=3, **SMALL).fit(X, y)
    est.set_params(early_stopping=True).fit(X, y)
    assert len(est.validation_scores_) == est.n_iter_ and est.best_loss_ is None
    est.set_params(early_stopping=False).fit(X, y)
    assert est.validation_scores_ is None and est.best_loss_ == min(est.loss_curve_[-3:])


def test_warm_start_refuses_other_classes():
    X, y = classes3()
    est = DenseClassifier(warm_start=True, max_iter=3, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="same classes"):
        est.fit(X[y < 2], y[y < 2])


# --------------------------------------------------------------------------------------
# class_weight and sample_weight

def test_class_weight_is_a_row_weight():
    X, y = make_classification(300, 5, weights=[0.8, 0.2], random_state=0)
    kw = dict(SMALL, max_iter=20, dtype="float64")
    for cw in ("balanced", {0: 1.0, 1: 4.0}):
        a = DenseClassifier(class_weight=cw, **kw).fit(X, y)
        b = DenseClassifier(**kw).fit(X, y, sample_weight=compute_sample_weight(cw, y))
        assert max_diff(a, b) == 0.0
    w = np.random.default_rng(1).uniform(0.5, 2, 300)
    a = DenseClassifier(class_weight="balanced", **kw).fit(X, y, sample_weight=w)
    b = DenseClassifier(**kw).fit(X, y, sample_weight=w * compute_sample_weight("balanced", y))
    assert max_diff(a, b) < 1e-12


def test_class_weight_balanced_improves_the_minority_class_recall():
    X, y = make_classification(600, 5, weights=[0.9, 0.1], flip_y=0.05, class_sep=0.5, random_state=0)
    plain = DenseClassifier(max_iter=100, **SMALL).fit(X, y)
    balanced = DenseClassifier(class_weight="balanced", max_iter=100, **SMALL).fit(X, y)
    recall = lambda est: (est.predict(X)[y == 1] == 1).mean()  # noqa: E731
    assert recall(balanced) > recall(plain)


def test_class_weight_rules():
    X, y = classes3()
    with pytest.raises(ValueError, match="balanced.*partial_fit"):
        DenseClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])
    DenseClassifier(class_weight={0: 2.0}, max_iter=2).partial_fit(X[y > 0], y[y > 0], classes=[0, 1, 2])
    Xm, Ym = make_multilabel_classification(50, 5, random_state=0)
    with pytest.raises(ValueError, match="multi-label"):
        DenseClassifier(class_weight="balanced").fit(Xm, Ym)


def test_sample_weight_zero_equals_dropping_rows_in_full_batch():
    X, y = regression(n=60)
    w = np.ones(60)
    w[::3] = 0
    kw = dict(SMALL, solver="lbfgs", max_iter=20, dtype="float64")
    a = DenseRegressor(**kw).fit(X, y, sample_weight=w)
    b = DenseRegressor(**kw).fit(X[w > 0], y[w > 0])
    assert max_diff(a, b) < 1e-10


def test_sample_weight_is_not_modified():
    X, y = classes3()
    w = np.ones(len(y))
    w.flags.writeable = False
    DenseClassifier(class_weight="balanced", max_iter=2).fit(X, y, sample_weight=w)
    assert np.all(w == 1)


# --------------------------------------------------------------------------------------
# Threads

def test_n_threads_applies_to_that_estimators_fits():
    X, y = classes3()
    est = DenseClassifier(n_threads=1, max_iter=3, **SMALL).fit(X, y)
    assert est.network_._threads == 1
    assert DenseClassifier(max_iter=3, **SMALL).fit(X, y).network_._threads is None
    with pytest.raises(ValueError, match="n_threads"):
        DenseClassifier(n_threads=0).fit(X, y)


def test_thread_count_follows_threadpoolctl_limits_set_later():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = dp.get_num_threads()
    try:
        dp.set_num_threads(2)
        assert dp.get_num_threads() == 2
        X, y = classes3()
        DenseClassifier(max_iter=2, **SMALL).fit(X, y)  # a fit in between must not pin the count
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            assert dp.get_num_threads() == 1
            limited = DenseClassifier(max_iter=10, **SMALL).fit(X, y)
        assert dp.get_num_threads() == 2
        one = DenseClassifier(max_iter=10, n_threads=1, **SMALL).fit(X, y)
        assert max_diff(limited, one) == 0.0
    finally:
        dp.set_num_threads(before)


def test_a_limit_other_than_the_held_count_survives_a_fit_in_another_thread():
    """A fit holding OpenBLAS at 2 threads while the user's count is 1: a threadpoolctl limit of
    1 set meanwhile differs from the hold, so the fit's end keeps it."""
    import threading
    import time
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if dp._usable_cores() < 2:
        pytest.skip("needs two usable cores")
    before = dp.get_num_threads()
    X, y = make_regression(20000, 64, random_state=0)
    est = DenseRegressor(hidden_layer_sizes=(512, 512), n_threads=2, max_iter=2, batch_size=256, random_state=0)
    assert dp._core.plan_threads([64, 512, 512, 1], 20000, 256, 2, "train")["blas_threads"] == 2
    try:
        dp._core.set_num_threads(1)
        fit = threading.Thread(target=est.fit, args=(X, y))
        fit.start()
        time.sleep(0.2)  # inside the first epoch, OpenBLAS held at 2
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            fit.join()
            assert dp.get_num_threads() == 1
    finally:
        fit.join()
        dp._core.set_num_threads(before)


@pytest.mark.xfail(reason="OpenBLAS's count is the process's: a limit equal to the count a pass in another "
                          "thread holds cannot be told from the hold, and the pass's end undoes it",
                   strict=False)
def test_a_fit_running_in_another_thread_does_not_undo_a_later_limit():
    """A fit holds OpenBLAS at its own count and restores the count it found when it ends;
    a threadpoolctl limit set meanwhile must survive that restore."""
    import threading
    import time
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = dp.get_num_threads()
    X, y = make_regression(20000, 64, random_state=0)
    est = DenseRegressor(hidden_layer_sizes=(256, 256), n_threads=1, max_iter=2, batch_size=64, random_state=0)
    try:
        dp.set_num_threads(2)
        fit = threading.Thread(target=est.fit, args=(X, y))
        fit.start()
        time.sleep(0.2)  # inside the first epoch
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            assert dp.get_num_threads() == 1
            fit.join()
            assert dp.get_num_threads() == 1
        assert dp.get_num_threads() == 2
    finally:
        fit.join()
        dp.set_num_threads(before)


def test_two_threads_match_one_to_rounding():
    X, y = make_classification(2000, 64, n_informative=20, n_classes=4, random_state=0)
    kw = dict(hidden_layer_sizes=(256,), random_state=0, max_iter=3, batch_size=256)
    one = DenseClassifier(n_threads=1, **kw).fit(X, y)
    two = DenseClassifier(n_threads=2, **kw).fit(X, y)
    assert max_diff(one, two) < 1e-4


# --------------------------------------------------------------------------------------
# Real uses

def test_pipeline_grid_search_random_search_cross_val_score():
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", DenseClassifier(max_iter=100, random_state=0))])
    grid = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": [(8,), (32,)], "mlp__alpha": [1e-4, 1e-2]}, cv=3)
    grid.fit(X, y)
    assert grid.best_score_ > 0.85 and len(grid.cv_results_["mean_test_score"]) == 4
    rand = RandomizedSearchCV(pipe, {"mlp__learning_rate_init": [1e-3, 3e-3, 1e-2], "mlp__solver": ["adam", "lbfgs"]},
                              n_iter=3, cv=3, random_state=0).fit(X, y)
    assert rand.best_score_ > 0.85
    scores = cross_val_score(make_pipeline(StandardScaler(), DenseRegressor(max_iter=200, random_state=0)),
                             *regression(), cv=3)
    assert scores.min() > 0.8


def test_column_transformer_with_a_dataframe():
    pd = pytest.importorskip("pandas")
    from sklearn.preprocessing import OneHotEncoder
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200) * 10,
                       "colour": rng.choice(["red", "green", "blue"], 200)})
    y = (df["a"] + df["b"] / 10 + (df["colour"] == "red") > 0.5).astype(int)
    pre = ColumnTransformer([("num", StandardScaler(), ["a", "b"]), ("cat", OneHotEncoder(), ["colour"])])
    model = Pipeline([("pre", pre), ("mlp", DenseClassifier(max_iter=300, random_state=0))]).fit(df, y)
    assert model.score(df, y) > 0.9
    assert model.predict(df.iloc[:5]).shape == (5,)


def test_dataframe_column_names():
    pd = pytest.importorskip("pandas")
    X, y = classes3()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    est = DenseClassifier(max_iter=5, **SMALL).fit(df, pd.Series(y))
    assert list(est.feature_names_in_) == list(df.columns)
    with pytest.warns(UserWarning, match="valid feature names"):
        np.testing.assert_array_equal(est.predict(df), est.predict(X))
    with pytest.raises(ValueError, match="feature names should match"):
        est.predict(df.rename(columns={"f0": "other"}))
    reg = DenseRegressor(max_iter=5, **SMALL).fit(df, pd.Series(y.astype(float)))
    assert list(reg.feature_names_in_) == list(df.columns)


def test_clone_gives_an_unfitted_copy_with_the_same_parameters():
    X, y = classes3()
    est = DenseClassifier(hidden_layer_sizes=(7,), class_weight="balanced", dtype="float64", n_threads=1,
                          max_iter=3).fit(X, y)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "network_")


@pytest.mark.parametrize("dump", ["pickle", "joblib", "joblib_mmap"])
def test_pickle_and_joblib_of_fitted_and_unfitted_estimators(dump, tmp_path):
    X, y = classes3()
    fitted = DenseClassifier(max_iter=5, **SMALL).fit(X, y)

    def roundtrip(obj):
        if dump == "pickle":
            return pickle.loads(pickle.dumps(obj))
        path = tmp_path / "model.joblib"
        joblib.dump(obj, path)
        return joblib.load(path, mmap_mode="r" if dump == "joblib_mmap" else None)

    loaded = roundtrip(fitted)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    assert loaded.coefs_ is loaded.network_.weights
    # Training continues from the loaded state, optimizer included.
    fitted.set_params(warm_start=True, max_iter=2).fit(X, y)
    loaded.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert max_diff(fitted, loaded) == 0.0
    unfitted = roundtrip(DenseRegressor(alpha=0.5))
    assert unfitted.get_params()["alpha"] == 0.5 and not hasattr(unfitted, "network_")
    # A bare Network takes writable parameter arrays only; the estimators copy read-only ones.
    if dump != "joblib_mmap":
        net = roundtrip(fitted.network_)
        np.testing.assert_array_equal(net.predict(X), fitted.network_.predict(X))


def test_metadata_routing_of_sample_weight():
    from sklearn.metrics import accuracy_score, make_scorer
    from sklearn.model_selection import StratifiedKFold
    X, y = classes3()
    w = np.random.default_rng(0).uniform(0.1, 2, len(y))
    train = next(iter(StratifiedKFold(3).split(X, y)))[0]  # cross_validate's first fold
    direct = make_pipeline(StandardScaler(), DenseClassifier(max_iter=20, **SMALL)).fit(
        X[train], y[train], denseclassifier__sample_weight=w[train])
    unweighted = make_pipeline(StandardScaler(), DenseClassifier(max_iter=20, **SMALL)).fit(X[train], y[train])
    with config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=False),
                             DenseClassifier(max_iter=20, **SMALL).set_fit_request(sample_weight=True))
        weighted_accuracy = make_scorer(accuracy_score).set_score_request(sample_weight=True)
        routed = cross_validate(pipe, X, y, cv=3, scoring=weighted_accuracy, params={"sample_weight": w},
                                return_estimator=True)
        search = GridSearchCV(pipe, {"denseclassifier__alpha": [1e-4, 1e-2]}, cv=3,
                              scoring=weighted_accuracy).fit(X, y, sample_weight=w)
    assert max_diff(routed["estimator"][0][-1], direct[-1]) == 0.0
    assert max_diff(routed["estimator"][0][-1], unweighted[-1]) > 0
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert np.isfinite(routed["test_score"]).all()


# --------------------------------------------------------------------------------------
# Bad input: scikit-learn's behaviour, a clear message, the model unchanged

def test_bad_input_raises_clear_errors():
    sp = pytest.importorskip("scipy.sparse")
    X, y = classes3()
    est = DenseClassifier(max_iter=3, **SMALL)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad, y)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        est.fit(bad, y)
    with pytest.raises(ValueError, match="[Cc]omplex"):
        est.fit(X + 1j, y)
    with pytest.raises((TypeError, ValueError)):
        est.fit(np.array([[{"a": 1}] * 6] * 200, dtype=object), y)
    with pytest.raises(TypeError, match="[Ss]parse"):
        est.fit(sp.csr_matrix(X), y)
    with pytest.raises(ValueError, match="0 sample"):
        est.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="1 class"):
        est.fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="Unknown label type"):
        est.fit(X, np.linspace(0, 1, len(y)))
    with pytest.raises(ValueError, match="zero"):
        est.fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="[Nn]egative"):
        est.fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.fit(X, y[:-1])


def test_wrong_width_at_predict_and_the_model_is_unchanged():
    X, y = classes3()
    est = DenseClassifier(max_iter=3, **SMALL).fit(X, y)
    before = [p.copy() for p in params(est)]
    with pytest.raises(ValueError, match="X has 5 features, but DenseClassifier is expecting 6 features"):
        est.predict(X[:, :5])
    with pytest.raises(ValueError, match="X has 5 features"):
        est.partial_fit(X[:, :5], y)
    bad = X.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.partial_fit(bad, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, params(est)))


def test_column_vector_y_warns_once():
    X, y = regression()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DenseRegressor(max_iter=2, **SMALL).fit(X, y[:, None])
    assert sum(issubclass(w.category, DataConversionWarning) for w in caught) == 1


@pytest.mark.parametrize("name,value,error", [
    ("hidden_layer_sizes", (10, 0), ValueError), ("hidden_layer_sizes", "10", TypeError),
    ("activation", "softmax", ValueError), ("activation", "swish", ValueError),
    ("solver", "newton", ValueError), ("alpha", -1.0, ValueError), ("batch_size", 0, ValueError),
    ("learning_rate", "cyclic", ValueError), ("learning_rate_init", 0.0, ValueError),
    ("max_iter", 0, ValueError), ("momentum", 1.5, ValueError), ("beta_1", 1.0, ValueError),
    ("epsilon", 0.0, ValueError), ("n_iter_no_change", 0, ValueError), ("validation_fraction", 1.0, ValueError),
    ("dtype", "float16", ValueError), ("backend", "gpu", ValueError), ("n_threads", 1.5, TypeError),
    ("shuffle", "yes", TypeError), ("max_fun", 0, ValueError),
])
def test_bad_parameters_raise_in_fit_naming_the_parameter(name, value, error):
    X, y = classes3()
    est = DenseClassifier(**{name: value})  # __init__ only stores
    assert est.get_params()[name] == value
    with pytest.raises(error, match=name):
        est.fit(X, y)


def test_divergence_is_a_value_error():
    X, y = regression()
    with pytest.raises(ValueError, match="non-finite"):
        DenseRegressor(solver="sgd", learning_rate_init=1e3, momentum=0.99, max_iter=50, **SMALL).fit(X * 1e3, y * 1e6)
