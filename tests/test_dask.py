"""Scale-out: joblib backends (threads, loky processes, a Dask cluster), thread limits in
workers, partial_fit streamed over Dask blocks and partitions (dask-ml's Incremental), and
prediction mapped over blocks."""

import os
import tracemalloc

import numpy as np
import pytest

pytest.importorskip("sklearn")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")

import joblib  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import denseprop as dp  # noqa: E402
from denseprop.sklearn import DenseClassifier, DenseRegressor  # noqa: E402

Incremental, ParallelPostFit = dask_ml_wrappers.Incremental, dask_ml_wrappers.ParallelPostFit
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CLASSES = [0, 1, 2]
BLOCK = 500


def data(n=2000, seed=0):
    return make_classification(n, 8, n_informative=5, n_classes=3, random_state=seed)


def model(**kw):
    return DenseClassifier(hidden_layer_sizes=(16,), random_state=0, **kw)


def same_weights(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_))


def partial_fit_numpy_blocks(X, y, epochs):
    est = model()
    for _ in range(epochs):
        for s in range(0, len(y), BLOCK):
            est.partial_fit(X[s:s + BLOCK], y[s:s + BLOCK], classes=CLASSES)
    return est


def search(n_jobs):
    X, y = data(600)
    grid = GridSearchCV(make_pipeline(StandardScaler(), model(n_threads=1, max_iter=30)),
                        {"denseclassifier__alpha": [1e-4, 1e-1], "denseclassifier__hidden_layer_sizes": [(8,), (16,)]},
                        cv=3, n_jobs=n_jobs)
    return grid.fit(X, y).cv_results_


def assert_same_scores(a, b):
    for key in ("split0_test_score", "split1_test_score", "split2_test_score", "mean_test_score"):
        np.testing.assert_array_equal(a[key], b[key])


# --------------------------------------------------------------------------------------
# Data larger than memory: partial_fit over blocks and partitions

def test_incremental_over_dask_array_blocks_gives_the_numpy_blocks_weights():
    X, y = data()
    inc = Incremental(model(), shuffle_blocks=False)
    Xd, yd = da.from_array(X, chunks=(BLOCK, 8)), da.from_array(y, chunks=BLOCK)
    for _ in range(3):  # several epochs: each call is one pass over the blocks, state carried on
        inc.partial_fit(Xd, yd, classes=CLASSES)
    assert same_weights(inc.estimator_, partial_fit_numpy_blocks(X, y, 3))


def test_incremental_over_dataframe_partitions_gives_the_numpy_blocks_weights():
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, y = data()
    df = dd.from_pandas(pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]), chunksize=BLOCK)
    ys = dd.from_pandas(pd.Series(y), chunksize=BLOCK)
    assert df.npartitions == len(y) // BLOCK
    inc = Incremental(model(), shuffle_blocks=False)
    for _ in range(2):
        inc.partial_fit(df, ys, classes=CLASSES)
    assert same_weights(inc.estimator_, partial_fit_numpy_blocks(X, y, 2))


def test_streaming_keeps_about_one_block_in_memory():
    """30 blocks of 4 MB made lazily: training over them holds about one at a time (the
    synchronous scheduler; the threaded one computes blocks ahead of the training chain)."""
    rows, cols, blocks = 20_000, 25, 30
    w = np.random.default_rng(99).standard_normal(cols)

    def block(i):
        return np.random.default_rng(i).standard_normal((rows, cols))

    Xd = da.concatenate([da.from_delayed(dask.delayed(block)(i), (rows, cols), dtype=float) for i in range(blocks)])
    yd = Xd @ w
    inc = Incremental(DenseRegressor(hidden_layer_sizes=(8,), random_state=0), shuffle_blocks=False)
    block_bytes = rows * cols * 8
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="synchronous"):
            inc.fit(Xd, yd)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # One float64 block, its float32 copy for the network, the targets: under 2.5 blocks of
    # the 30 (measured: 1.85).
    assert peak < 2.5 * block_bytes
    assert inc.estimator_.t_ == rows * blocks


def test_prediction_mapped_over_blocks():
    X, y = data()
    est = model(max_iter=20).fit(X, y)
    Xd = da.from_array(X, chunks=(BLOCK, 8))
    post = ParallelPostFit(est)
    labels, proba = post.predict(Xd), post.predict_proba(Xd)
    assert isinstance(labels, da.Array) and isinstance(proba, da.Array)
    blockwise = np.vstack([est.predict_proba(X[s:s + BLOCK]) for s in range(0, len(y), BLOCK)])
    np.testing.assert_array_equal(proba.compute(), blockwise)
    # A row's probabilities depend on how many rows share the call only at float32 rounding.
    np.testing.assert_allclose(proba.compute(), est.predict_proba(X), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(labels.compute(), est.classes_[blockwise.argmax(axis=1)])
    reg = DenseRegressor(hidden_layer_sizes=(8,), random_state=0, max_iter=10, dtype="float64").fit(X, y * 1.0)
    np.testing.assert_allclose(ParallelPostFit(reg).predict(Xd).compute(), reg.predict(X), rtol=1e-12)


# --------------------------------------------------------------------------------------
# joblib: threads and processes

def test_threading_and_loky_backends_give_the_sequential_search():
    sequential = search(1)
    for backend in ("threading", "loky"):
        with joblib.parallel_backend(backend):
            assert_same_scores(search(2), sequential)


def test_loky_workers_hold_denseprop_to_their_share_of_the_cores():
    counts = joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(dp.get_num_threads)() for _ in range(4))
    assert max(counts) <= max(1, (os.cpu_count() or 1) // 2)


# --------------------------------------------------------------------------------------
# A real Dask cluster: two worker processes on this machine

def _fit_on_worker(est, X, y):
    return est.fit(X, y)


@pytest.mark.skipif(os.environ.get("DENSEPROP_SANITIZER_RUN") == "1",
                    reason="the worker processes inherit the sanitizer preload and only rerun, in Dask's "
                           "code, fits the other tests already check; the Release run covers them")
def test_local_cluster_search_threads_and_prediction():
    distributed = pytest.importorskip("distributed")
    sequential = search(1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        # The nanny starts workers with one BLAS thread, and denseprop follows that.
        assert set(client.run(dp.get_num_threads).values()) == {1}
        with joblib.parallel_backend("dask"):
            assert_same_scores(search(2), sequential)
        # n_threads=None on a worker: one thread, so exactly a local one-thread fit.
        X, y = data(600)
        remote = client.submit(_fit_on_worker, model(max_iter=20), X, y).result(timeout=120)
        assert same_weights(remote, model(max_iter=20, n_threads=1).fit(X, y))
        # Prediction mapped over the blocks on the cluster.
        Xd = da.from_array(X, chunks=(200, 8))
        proba = ParallelPostFit(remote).predict_proba(Xd).compute()
        blockwise = np.vstack([remote.predict_proba(X[s:s + 200]) for s in range(0, 600, 200)])
        np.testing.assert_array_equal(proba, blockwise)
        # partial_fit streamed over blocks that live on the workers.
        inc = Incremental(model(), shuffle_blocks=False)
        Xd, yd = da.from_array(X, chunks=(200, 8)), da.from_array(y, chunks=200)
        inc.partial_fit(Xd, yd, classes=CLASSES)
        local = model()
        for s in range(0, 600, 200):
            local.partial_fit(X[s:s + 200], y[s:s + 200], classes=CLASSES)
        assert same_weights(inc.estimator_, local)
