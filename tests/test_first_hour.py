"""The traps a new user met in the first hour (issue 20): each misleading message replaced, each
small trap fixed, and the public names' Literal types kept equal to the backends' tables."""

import os
import typing
import warnings

import numpy as np
import pytest

import denseprop as dp
from denseprop import _checks, _types

X6 = np.random.default_rng(0).standard_normal((6, 4))


# ------------------------------------------------------------------ names and types

def test_literal_types_list_the_registered_names():
    assert typing.get_args(_types.HiddenActivation) == _checks.HIDDEN_ACTIVATIONS
    assert typing.get_args(_types.OutputActivation) == _checks.ACTIVATIONS
    assert typing.get_args(_types.LossName) == _checks.LOSSES
    assert typing.get_args(_types.InitName) == _checks.INITS
    assert typing.get_args(_types.BackendName) == _checks.BACKENDS
    assert typing.get_args(_types.DTypeName) == _checks.DTYPES


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.dtype("float32"), "float64"])
def test_dtype_takes_numpy_dtypes(dtype):
    assert dp.Network([2, 1], dtype=dtype).dtype == np.dtype(dtype)


def test_history_fields_are_declared():
    h = dp.History()
    for field in dp.History.FIELDS:
        assert getattr(h, field) == []
    assert typing.get_type_hints(dp.History.__init__)["return"] is type(None)


# ------------------------------------------------------------------ messages

def softmax_net():
    return dp.Network([4, 8, 3], output_activation="softmax", loss="cross_entropy", seed=0)


def test_column_of_integer_labels_says_ravel():
    with pytest.raises(ValueError, match=r"y has shape \(6, 1\): pass class labels 1-D, as y.ravel\(\)"):
        softmax_net().fit(X6, np.array([[0], [1], [2], [0], [1], [2]]))


def test_integer_labels_for_sigmoid_outputs_do_not_contradict():
    net = dp.Network([4, 8, 3], output_activation="sigmoid", loss="cross_entropy")
    with pytest.raises(ValueError) as info:
        net.fit(X6, np.array([0, 1, 2, 0, 1, 2]))
    assert "one 0/1 column per sigmoid output" in str(info.value)
    assert "class labels" not in str(info.value)


def test_string_labels_need_an_encoder():
    with pytest.raises(TypeError, match="string or categorical labels need an encoder; denseprop.sklearn"):
        softmax_net().fit(X6, np.array(list("abcabc")))


def test_pandas_category_labels_need_an_encoder():
    pd = pytest.importorskip("pandas")
    with pytest.raises(TypeError, match="need an encoder; denseprop.sklearn"):
        softmax_net().fit(X6, pd.Series(list("abcabc"), dtype="category"))


def test_sparse_input_suggests_toarray():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match=r"scipy.sparse matrix.*X.toarray\(\)"):
        dp.Network([4, 1]).predict(sparse.csr_matrix(X6))


def test_pandas_nullable_numbers_are_converted_or_named_missing():
    pd = pytest.importorskip("pandas")
    net = dp.Network([4, 1], seed=0)
    net.fit(pd.DataFrame(X6), pd.Series([1.0, 2.0, 2.0, 3.0, 4.0, 5.0], dtype="Float64"))
    net.fit(X6, pd.Series([1, 2, 2, 3, 4, 5], dtype="Int64"))
    with pytest.raises(ValueError, match="missing values become NaN"):
        net.fit(X6, pd.Series([1.0, None, 2.0, 3.0, 4.0, 5.0], dtype="Float64"))


def test_divergence_from_large_targets_names_the_targets():
    X = np.random.default_rng(0).standard_normal((200, 4))
    with pytest.raises(dp.DivergenceError, match="The targets are large .*scale them too"):
        dp.Network([4, 8, 1], seed=0).fit(X, 1e4 * X[:, 0], lr=0.1, epochs=3)
    with pytest.raises(dp.DivergenceError, match="Lower the learning rate .*scale the inputs"):
        dp.Network([4, 8, 1], seed=0).fit(1e6 * X, X[:, 0], lr=10.0, epochs=3)


# ------------------------------------------------------------------ small traps

def test_verbose_takes_a_bool(capsys):
    X = np.random.default_rng(0).standard_normal((40, 4))
    dp.Network([4, 1], seed=0).fit(X, X[:, 0], epochs=2, verbose=True)
    dp.Network([4, 1], seed=0).fit(X, X[:, 0], epochs=2, verbose=False)
    with pytest.raises(ValueError, match="verbose"):
        dp.Network([4, 1]).fit(X, X[:, 0], verbose=-1)


def test_progress_lines_carry_every_metric_at_80_columns(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setenv("COLUMNS", "80")
    X = np.random.default_rng(0).standard_normal((60, 4))
    y = np.stack([X[:, 0], X[:, 1]], axis=1)
    dp.Network([4, 8, 2], seed=0).fit(X, y, epochs=3, validation_split=0.25, verbose=1)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 3
    for line in lines:
        for key in ("loss=", "r2=", "val_loss=", "val_r2=", "lr=", " s)"):
            assert key in line, line


def test_early_stopping_counts_as_documented():
    """patience=2: stops after patience + 1 epochs without improvement (scikit-learn's rule)."""
    X = np.random.default_rng(0).standard_normal((50, 4))
    net = dp.Network([4, 1], seed=0, dtype="float64")
    # A rate so small that no epoch improves on the first one.
    hist = net.fit(X, X[:, 0], epochs=20, optimizer=dp.SGD(lr=1e-300), validation_split=0.2,
                   early_stopping=dp.EarlyStopping(patience=2, min_delta=1e-9))
    assert len(hist.loss) == 4 and hist.stopped_early and hist.best_epoch == 0
    # The docstring's worked example.
    from denseprop._network import _Stopper
    stopper, history = _Stopper(dp.EarlyStopping(patience=2), []), dp.History()
    stops = []
    for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.93, 0.92, 0.91]):
        stops.append(stopper.update(loss, {"epoch": epoch}, history))
    assert stops == [False, False, False, False, True, True] and history.best_epoch == 1
    assert "patience + 1" in dp.EarlyStopping.__doc__ and "Keras" in dp.EarlyStopping.__doc__


def test_one_class_validation_split_warns_once():
    X = np.random.default_rng(0).standard_normal((40, 4))
    labels = np.repeat([0, 1, 2], [14, 13, 13])  # sorted: the last 20% are all class 2
    with pytest.warns(UserWarning, match="all of class 2.*Shuffle the rows first") as record:
        softmax_net().fit(X, labels, epochs=2, validation_split=0.2)
    assert len([w for w in record if issubclass(w.category, UserWarning)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        softmax_net().fit(X, np.tile([0, 1, 2, 0], 10), epochs=1, validation_split=0.2)


def test_set_num_threads_caps_at_the_usable_cores():
    before = dp.get_num_threads()
    usable = dp._usable_cores()
    try:
        with pytest.warns(RuntimeWarning, match=f"this process may use {usable} cores"):
            dp.set_num_threads(1000)
        assert dp.get_num_threads() == usable
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            dp.set_num_threads(1)
        assert dp.get_num_threads() == 1
    finally:
        dp._core.set_num_threads(before)


# ------------------------------------------------------------------ saving

def test_save_errors_name_the_path_given(tmp_path):
    net = dp.Network([2, 1])
    missing = tmp_path / "no" / "model.npz"
    with pytest.raises(FileNotFoundError) as info:
        net.save(missing)
    assert info.value.filename == str(missing) and "no such directory" in str(info.value)
    with pytest.raises(IsADirectoryError) as info:
        net.save(tmp_path)
    assert info.value.filename == str(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_follow_the_umask(tmp_path, umask):
    before = os.umask(umask)
    try:
        dp.Network([2, 1]).save(tmp_path / "m.npz")
    finally:
        os.umask(before)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o666 & ~umask


# ------------------------------------------------------------------ the plot

def test_history_plot_shows_the_score_and_the_best_epoch(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    X = np.random.default_rng(0).standard_normal((80, 4))
    hist = dp.Network([4, 8, 1], seed=0).fit(X, X[:, 0], epochs=8, lr=0.05, validation_split=0.25,
                                              early_stopping=dp.EarlyStopping(patience=20))
    ax = hist.plot()
    labels = ax.get_legend().get_texts()
    assert {t.get_text() for t in labels} >= {"loss", "val_loss", "r2", "val_r2", "best epoch"}
    ax.figure.savefig(tmp_path / "history.png")
    assert (tmp_path / "history.png").stat().st_size > 1000
