"""Reliability: no crash, no silent corruption, no lost work.

Ctrl-C during fit, divergence, atomic and self-describing model files, threads, size and
memory limits, the documented error classes, determinism and a flat memory profile.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import pathlib
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import zipfile

import numpy as np
import pytest

import denseprop as dp
from denseprop import _core
from denseprop import _io

# Timing and resident-memory checks measure the Release build; under the sanitizers (a
# Debug build with ASan's quarantine, see .ci/run) they would measure the instrumentation.
RELEASE_BUILD_ONLY = pytest.mark.skipif(os.environ.get("DENSEPROP_SANITIZER_RUN") == "1",
                                        reason="timing/memory check of the Release build")

# How soon Ctrl-C must stop a fit: well under a second in the Release build; the sanitizers'
# Debug build runs the Python-side steps several times slower, so it gets more room (the
# check there is that the signal stops the fit at all, long before its epochs would end).
MAX_INTERRUPT_LATENCY = 2.0 if os.environ.get("DENSEPROP_SANITIZER_RUN") == "1" else 0.5

MAIN_THREAD_ONLY = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                      reason="signals are delivered to the main thread")


@pytest.fixture
def one_blas_thread():
    before = dp.get_num_threads()
    dp.set_num_threads(1)
    yield
    dp.set_num_threads(before)


def regression_data(n=4000, n_in=32, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    y = (X[:, :4].sum(axis=1) + 0.1 * rng.standard_normal(n)).astype(dtype)
    return X, y


def params_of(net):
    return [p.copy() for p in net.weights + net.biases]


def assert_params_equal(a, b, msg=""):
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_array_equal(x, y, err_msg=f"{msg} (array {i})")


# ======================================================================================
# Ctrl-C


def _interrupt_fit(net, X, y, opt, delay, how, epochs=300, batch_size=32):
    """Runs a long fit, interrupted after `delay` s; returns (seconds from signal to
    KeyboardInterrupt, the interrupt)."""
    sent = {}
    previous_alarm = signal.getsignal(signal.SIGALRM)
    timer = None
    if how == "kill":
        def fire():
            sent["t"] = time.perf_counter()
            os.kill(os.getpid(), signal.SIGINT)
        timer = threading.Timer(delay, fire)
        timer.start()
    else:
        def on_alarm(signum, frame):  # runs when the C++ polls; the signal came at armed + delay
            raise KeyboardInterrupt
        signal.signal(signal.SIGALRM, on_alarm)
        sent["armed"] = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, delay)
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            net.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=opt)
        caught = time.perf_counter()
    finally:
        if timer is not None:
            timer.cancel()
            timer.join()
        else:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_alarm)
    if "t" not in sent:
        sent["t"] = sent["armed"] + delay
    return caught - sent["t"], info.value


def _replay(net_kwargs, X, y, opt_factory, steps, batch_size, n_batches):
    """A same-seed network trained for exactly `steps` optimizer steps, through the public API,
    visiting the rows in the order the interrupted fit did."""
    ref = dp.Network(**net_kwargs)
    opt = opt_factory()
    epochs, partial = divmod(steps, n_batches)
    if epochs:
        ref.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=opt)
    if partial:
        perm = np.empty(X.shape[0], np.int64)  # the shuffle of the interrupted epoch
        dp.reference.shuffled_order(ref._rng.integers(0, 2**64, dtype=np.uint64), perm)
        rows = perm[:partial * batch_size]
        ref.fit(X[rows], y[rows], epochs=1, batch_size=batch_size, shuffle=False, optimizer=opt)
    assert opt.step == steps
    return ref


def _raised_in(interrupt, filename):
    return any(frame.filename.endswith(filename) for frame in traceback.extract_tb(interrupt.__traceback__))


@MAIN_THREAD_ONLY
@pytest.mark.parametrize("how", ["kill", "setitimer"])
def test_ctrl_c_interrupts_cpp_fit_quickly_and_keeps_completed_steps(one_blas_thread, how):
    X, y = regression_data()
    kwargs = dict(layers=[32, 128, 128, 1], seed=3, backend="cpp")
    net = dp.Network(**kwargs)
    opt = dp.Adam(lr=1e-3)
    latency, interrupt = _interrupt_fit(net, X, y, opt, 0.6, how)
    assert latency < MAX_INTERRUPT_LATENCY, f"KeyboardInterrupt came {latency:.3f} s after the signal"
    assert net._busy is None
    for p in net.weights + net.biases:
        assert np.isfinite(p).all()
    n_batches = X.shape[0] // 32
    assert opt.step > 0, "the fit was interrupted before any step"
    assert opt.epochs * n_batches <= opt.step <= (opt.epochs + 1) * n_batches, (opt.epochs, opt.step)
    if hasattr(interrupt, "step"):
        # Stopped inside the C++ epoch loop: the weights are exactly those after opt.step steps,
        # so the step count (Adam's bias correction) is right. (When the signal lands just after
        # an epoch's C++ returns, see test_ctrl_c_right_after_an_epoch_keeps_its_steps.)
        ref = _replay(kwargs, X, y, lambda: dp.Adam(lr=1e-3), opt.step, 32, n_batches)
        assert_params_equal(params_of(net), params_of(ref),
                            f"weights after Ctrl-C differ from a replay of opt.step={opt.step} steps "
                            f"(opt.epochs={opt.epochs}, interrupt.step={interrupt.step})")
    # Training continues from there.
    before = opt.step
    history = net.fit(X, y, epochs=1, batch_size=32)
    assert math.isfinite(history.loss[0])
    assert opt.step == before + n_batches
    for p in net.weights + net.biases:
        assert np.isfinite(p).all()


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_ctrl_c_right_after_an_epoch_keeps_its_steps(monkeypatch, backend):
    """The signal may arrive after the C++ last polled, so Python raises KeyboardInterrupt as
    train_epoch returns: the epoch's updates are in the weights and must be in opt.step too."""
    module = _core if backend == "cpp" else dp.reference
    real = module.train_epoch
    calls = []

    def train_epoch(*args):
        step = real(*args)
        calls.append(step)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what a SIGINT noticed at this return does
        return step
    X, y = regression_data(n=256, n_in=8)
    kwargs = dict(layers=[8, 16, 1], seed=4, backend=backend)
    net = dp.Network(**kwargs)
    opt = dp.Adam(lr=1e-3)
    monkeypatch.setattr(module, "train_epoch", train_epoch)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=5, batch_size=32, optimizer=opt)
    monkeypatch.undo()
    ref = _replay(kwargs, X, y, lambda: dp.Adam(lr=1e-3), 16, 32, 8)
    assert_params_equal(params_of(net), params_of(ref), "weights after two whole epochs")
    assert opt.step == 16, f"two epochs of 8 steps ran, but opt.step is {opt.step}"


@MAIN_THREAD_ONLY
def test_ctrl_c_latency_stays_low_for_a_slow_epoch(one_blas_thread):
    """Even when a single batch is expensive, the signal is noticed within the polling period."""
    X, y = regression_data(n=2048, n_in=512)
    net = dp.Network([512, 1024, 1024, 1], seed=0)
    latency, _ = _interrupt_fit(net, X, y, dp.SGD(lr=1e-4), 0.5, "kill", epochs=50, batch_size=2048)
    assert latency < MAX_INTERRUPT_LATENCY, f"KeyboardInterrupt came {latency:.3f} s after the signal"
    assert all(np.isfinite(p).all() for p in net.weights + net.biases)


@MAIN_THREAD_ONLY
def test_ctrl_c_interrupts_numpy_fit_quickly(one_blas_thread):
    X, y = regression_data(n=2000, n_in=16)
    net = dp.Network([16, 64, 1], seed=5, backend="numpy")
    opt = dp.Adam(lr=1e-3)
    latency, _ = _interrupt_fit(net, X, y, opt, 0.4, "kill", epochs=200, batch_size=32)
    assert latency < MAX_INTERRUPT_LATENCY, f"KeyboardInterrupt came {latency:.3f} s after the signal"
    assert net._busy is None
    assert all(np.isfinite(p).all() for p in net.weights + net.biases)
    history = net.fit(X, y, epochs=1, batch_size=32)
    assert math.isfinite(history.loss[0])


@MAIN_THREAD_ONLY
def test_ctrl_c_in_the_middle_of_a_numpy_step_keeps_the_last_completed_step(monkeypatch):
    """The reference updates the layers one after the other; a Ctrl-C arriving between two of
    them must not leave a half-applied step (the docs promise the weights of the last completed
    step): the step finishes, then KeyboardInterrupt is raised."""
    real = dp.reference.OPTIMIZERS["adam"]
    calls = []

    def update(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4 * 10 + 3:  # step 11: W1 and b1 updated, W0 not yet
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)
    X, y = regression_data(n=256, n_in=8)
    kwargs = dict(layers=[8, 16, 1], seed=4, backend="numpy")
    net = dp.Network(**kwargs)
    opt = dp.Adam(lr=1e-3)
    monkeypatch.setitem(dp.reference.OPTIMIZERS, "adam", update)
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=5, batch_size=32, optimizer=opt)
    monkeypatch.undo()
    assert opt.step == 11
    ref = _replay(kwargs, X, y, lambda: dp.Adam(lr=1e-3), 11, 32, 8)
    assert_params_equal(params_of(net), params_of(ref), "a half-applied step after Ctrl-C")
    for s, t in zip(opt.state, ref.optimizer.state):
        np.testing.assert_array_equal(s, t, err_msg="optimizer state of a half-applied step")


# ======================================================================================
# Divergence


def test_huge_lr_raises_divergence_error_and_keeps_initial_weights():
    X, y = regression_data(n=256, n_in=8)
    net = dp.Network([8, 16, 1], seed=0)
    initial = params_of(net)
    with pytest.raises(dp.DivergenceError) as info:
        net.fit(X, y, epochs=5, lr=1e30)
    err = info.value
    assert isinstance(err, ArithmeticError)
    assert err.epoch == 0 and len(err.history) == 0
    assert "learning rate" in str(err)
    assert_params_equal(params_of(net), initial, "weights after divergence in the first epoch")
    assert net.optimizer.step == 0 and net.optimizer.epochs == 0
    # And the network still trains at a sane rate afterwards.
    history = net.fit(X, y, epochs=1, lr=1e-3)
    assert math.isfinite(history.loss[0])


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_divergence_keeps_weights_of_last_finite_epoch(backend, opt_name):
    X, y = regression_data(n=256, n_in=8)
    base_lr = 1e-3

    def make_opt(schedule=None):
        return dp.SGD(lr=base_lr, momentum=0.9, schedule=schedule) if opt_name == "sgd" else \
            dp.Adam(lr=base_lr, schedule=schedule)
    # The rate grows 1e12-fold per epoch: epochs 0 and 1 are fine (1e-3 then 1e9 is not).
    net = dp.Network([8, 16, 1], seed=7, backend=backend)
    opt = make_opt(dp.StepDecay(step_size=1, gamma=1e12))
    with pytest.raises(dp.DivergenceError) as info:
        net.fit(X, y, epochs=6, batch_size=32, optimizer=opt)
    err = info.value
    assert err.epoch >= 1, "diverged at once; the test needs a finite epoch first"
    assert len(err.history) == err.epoch and all(math.isfinite(v) for v in err.history.loss)
    assert "learning rate" in str(err).lower() or "lr" in str(err)
    for p in net.weights + net.biases:
        assert np.isfinite(p).all()
    # A same-seed network trained for exactly the finite epochs, with the same rates.
    ref = dp.Network([8, 16, 1], seed=7, backend=backend)
    ref_opt = make_opt(dp.StepDecay(step_size=1, gamma=1e12))
    ref.fit(X, y, epochs=err.epoch, batch_size=32, optimizer=ref_opt)
    assert_params_equal(params_of(net), params_of(ref), "weights after divergence")
    assert opt.step == ref_opt.step and opt.epochs == ref_opt.epochs
    for s, t in zip(opt.state, ref_opt.state):
        np.testing.assert_array_equal(s, t)


# ======================================================================================
# Model files


@pytest.fixture
def trained(tmp_path):
    X, y = regression_data(n=64, n_in=5)
    net = dp.Network([5, 7, 3, 1], activation=["tanh", "relu"], seed=11)
    net.fit(X, y, epochs=2, batch_size=16, optimizer=dp.Adam(lr=1e-3, schedule=dp.ReduceOnPlateau(patience=0)))
    path = tmp_path / "model.npz"
    net.save(path)
    return net, path


def _temp_leftovers(directory, keep):
    return sorted(p.name for p in pathlib.Path(directory).iterdir() if p.name not in keep)


@pytest.mark.parametrize("failure", ["savez", "replace", "fsync", "interrupt"])
def test_failed_save_keeps_earlier_file_and_leaves_no_temp_file(trained, monkeypatch, failure):
    net, path = trained
    earlier = path.read_bytes()
    net.fit(np.ones((4, 5)), np.ones(4), epochs=1)  # the network now differs from the file

    def boom(*args, **kwargs):
        raise (KeyboardInterrupt if failure == "interrupt" else OSError(28, "No space left on device"))
    if failure in ("savez", "interrupt"):
        real = np.savez

        def partial_savez(f, *args, **kwargs):  # writes part of the archive, then fails
            if hasattr(f, "write"):
                f.write(b"PK\x03\x04 partial")
            boom()
        monkeypatch.setattr(np, "savez", partial_savez)
        assert real is not np.savez
    elif failure == "replace":
        monkeypatch.setattr(os, "replace", boom)
    else:
        monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt if failure == "interrupt" else OSError):
        net.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == earlier, "a failed save damaged the earlier file"
    assert _temp_leftovers(path.parent, {path.name}) == [], "a failed save left a temporary file"
    dp.Network.load(path)


def test_save_writes_exactly_the_path_given(tmp_path):
    net = dp.Network([2, 1], seed=0)
    for name in ("model", "model.bin", "model.npz", "a.b.c"):
        net.save(tmp_path / name)
        assert (tmp_path / name).is_file()
        assert not (tmp_path / (name + ".npz")).exists(), f"save({name!r}) appended .npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model", "model.bin", "model.npz", "a.b.c"])
    # Overwriting replaces the file.
    first = (tmp_path / "model").read_bytes()
    net.fit(np.ones((3, 2)), np.ones(3), epochs=1)
    net.save(tmp_path / "model")
    assert (tmp_path / "model").read_bytes() != first
    assert len(list(tmp_path.iterdir())) == 4


def test_model_file_is_versioned_self_describing_and_pickle_free(trained):
    net, path = trained
    with np.load(path, allow_pickle=False) as npz:
        names = set(npz.files)
        meta = json.loads(str(npz["meta"][()]))
        arrays = {k: npz[k] for k in npz.files}
    assert meta["format"] == "denseprop" and isinstance(meta["format_version"], int)
    assert meta["library_version"] == dp.__version__
    for key in ("layers", "activation", "output_activation", "loss", "dtype", "optimizer", "rng", "checksum"):
        assert key in meta, key
    assert meta["layers"] == net.layers and meta["dtype"] == "float32"
    assert meta["optimizer"]["class"] == "Adam" and meta["optimizer"]["step"] == net.optimizer.step
    assert {f"W{i}" for i in range(3)} | {f"b{i}" for i in range(3)} <= names
    assert all(a.dtype != object for a in arrays.values())
    loaded = dp.Network.load(path)
    assert_params_equal(params_of(loaded), params_of(net))
    assert loaded.optimizer.step == net.optimizer.step
    assert loaded._rng.bit_generator.state == net._rng.bit_generator.state
    assert loaded.optimizer.schedule.get_state() == net.optimizer.schedule.get_state()


def _rewrite(path, out, mutate, recompute_checksum):
    with np.load(path) as npz:
        meta = json.loads(str(npz["meta"][()]))
        arrays = {k: npz[k] for k in npz.files if k != "meta"}
    mutate(meta, arrays)
    if recompute_checksum:
        meta["checksum"] = _io._checksum(meta, arrays)
    with open(out, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    return out


def _load_error(path):
    with pytest.raises(ValueError) as info:
        dp.Network.load(path)
    assert type(info.value) is ValueError, f"{type(info.value).__name__}: {info.value}"
    msg = str(info.value)
    assert str(path) in msg, f"the message does not name the file: {msg}"
    return msg.replace(str(path), "<path>").lower()


def test_load_rejects_every_truncation(trained, tmp_path):
    _, path = trained
    raw = path.read_bytes()
    out = tmp_path / "cut.npz"
    for cut in list(range(0, len(raw), max(1, len(raw) // 300))) + [len(raw) - 1]:
        out.write_bytes(raw[:cut])
        msg = _load_error(out)
        assert any(w in msg for w in ("truncated", "damaged", "empty")), msg


def test_load_rejects_bit_flips_everywhere(trained, tmp_path):
    """One flipped bit in each byte of the file: ValueError, or a file whose change does not
    matter (e.g. a zip timestamp) and loads as the very same network."""
    net, path = trained
    raw = path.read_bytes()
    out = tmp_path / "flip.npz"
    harmless = 0
    for pos in range(len(raw)):
        damaged = bytearray(raw)
        damaged[pos] ^= 1 << (pos % 8)
        out.write_bytes(bytes(damaged))
        try:
            loaded = dp.Network.load(out)
        except ValueError as err:
            assert str(out) in str(err)
            continue
        harmless += 1
        assert_params_equal(params_of(loaded), params_of(net), f"flip at byte {pos} loaded silently")
        assert loaded.optimizer.step == net.optimizer.step
        assert loaded._rng.bit_generator.state == net._rng.bit_generator.state
        assert loaded.optimizer.get_config() == net.optimizer.get_config()
        assert loaded.optimizer.schedule.get_state() == net.optimizer.schedule.get_state()
        for s, t in zip(loaded.optimizer.state, net.optimizer.state):
            np.testing.assert_array_equal(s, t)
    assert harmless < len(raw) // 2  # the zip's own metadata (timestamps, extra fields) is not checked


def test_load_rejects_hand_edited_metadata(trained, tmp_path):
    _, path = trained

    def edit(meta, arrays):
        meta["layers"][1] = 8
    msg = _load_error(_rewrite(path, tmp_path / "edited.npz", edit, recompute_checksum=False))
    assert "checksum" in msg or "edited" in msg

    def edit_array(meta, arrays):
        arrays["W0"] = arrays["W0"] + 1
    msg = _load_error(_rewrite(path, tmp_path / "edited2.npz", edit_array, recompute_checksum=False))
    assert "checksum" in msg or "edited" in msg


def test_load_rejects_future_format_version(trained, tmp_path):
    _, path = trained

    def edit(meta, arrays):
        meta["format_version"] = meta["format_version"] + 1
        meta["library_version"] = "99.0"
    msg = _load_error(_rewrite(path, tmp_path / "future.npz", edit, recompute_checksum=True))
    assert "newer" in msg and "upgrade" in msg


@pytest.mark.parametrize("content", ["empty", "text", "npy", "random", "zip-without-meta", "pickle",
                                     "other-npz", "json"])
def test_load_rejects_non_model_files(tmp_path, content):
    path = tmp_path / f"{content}.npz"
    if content == "empty":
        path.write_bytes(b"")
    elif content == "text":
        path.write_text("layers: [3, 1]\n")
    elif content == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif content == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif content == "zip-without-meta":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("W0.npy", b"nonsense")
    elif content == "pickle":
        with open(path, "wb") as f:
            np.savez(f, meta=np.array([{"format": "denseprop"}], dtype=object))
    elif content == "other-npz":
        with open(path, "wb") as f:
            np.savez(f, a=np.zeros(3), meta=np.array('{"format": "other"}'))
    else:
        path.write_text(json.dumps({"format": "denseprop", "format_version": 1}))
    msg = _load_error(path)
    if content == "empty":
        assert "empty" in msg, f"the message does not say the file is empty: {msg}"
    if content in ("other-npz", "zip-without-meta"):
        assert "denseprop" in msg or "meta" in msg


def test_load_missing_file_raises_file_not_found(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError) as info:
        dp.Network.load(path)
    assert info.value.filename == str(path)


# Edits that keep a valid checksum: a crafted or carefully hand-edited file. Each must be a
# ValueError naming the file (never OverflowError, MemoryError, RecursionError, KeyError ...).
CONSISTENT_EDITS = {
    "step-infinite": (["optimizer", "step"], float("inf")),
    "step-nan": (["optimizer", "step"], float("nan")),
    "step-huge": (["optimizer", "step"], 10**30),
    "epochs-huge-float": (["optimizer", "epochs"], 1e300),
    "rng-state-huge": (["rng", "state", "state"], 2**200),
    "rng-state-negative": (["rng", "state", "state"], -1),
    "rng-inc-float": (["rng", "state", "inc"], 0.5),
    "rng-missing": (["rng"], {"bit_generator": "PCG64"}),
    "layers-huge": (["layers"], [5, 10**12, 3, 1]),
    "layers-float": (["layers"], [5, 7.0, 3, 1]),
    "seed-negative": (["seed"], -1),
    "dtype-odd": (["dtype"], "float16"),
    "activation-odd": (["activation"], ["tanh", "nope"]),
    "loss-odd": (["loss"], 7),
    "lr-negative": (["optimizer", "config", "lr"], -1.0),
    "schedule-state-odd": (["optimizer", "schedule", "state"], {"scale": "x", "best": None, "bad_epochs": 0}),
    "schedule-state-inf": (["optimizer", "schedule", "state"], {"scale": 1.0, "best": None,
                                                                "bad_epochs": float("inf")}),
    "optimizer-class-odd": (["optimizer", "class"], "object"),
    "n-state-huge": (["optimizer", "n_state"], 10**15),
    "format-version-bool": (["format_version"], True),
    "format-version-float": (["format_version"], 1.0),
    "deeply-nested": (["init"], "NEST"),
}


@pytest.mark.parametrize("edit", list(CONSISTENT_EDITS))
def test_load_rejects_inconsistent_metadata_with_value_error(trained, tmp_path, edit):
    net, path = trained
    keys, value = CONSISTENT_EDITS[edit]

    def mutate(meta, arrays):
        d = meta
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    out = _rewrite(path, tmp_path / "crafted.npz", mutate, recompute_checksum=True)
    if value == "NEST":  # json nested too deeply for the decoder
        with np.load(out) as npz:
            text = str(npz["meta"][()])
        text = text.replace('"NEST"', "[" * 100_000 + "]" * 100_000)
        with open(out, "wb") as f:
            np.savez(f, meta=np.array(text), **{k: v for k, v in np.load(path).items() if k != "meta"})
    try:
        dp.Network.load(out)
    except ValueError as err:
        assert type(err) is ValueError and str(out) in str(err)
        return
    except Exception as err:  # noqa: BLE001
        pytest.fail(f"load of a file with {edit} raised {type(err).__name__}: {err}")
    pytest.fail(f"a file with {edit} loaded")


def test_load_rejects_array_header_claiming_a_huge_shape(trained, tmp_path):
    """A damaged .npy header inside the archive must not make load allocate terabytes."""
    _, path = trained
    out = tmp_path / "huge.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**6, 10**6)})
    with np.load(path) as npz, zipfile.ZipFile(out, "w") as zf:
        for name in npz.files:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, npz[name])
            data = header.getvalue() + b"\0" * 64 if name == "W0" else buf.getvalue()
            zf.writestr(name + ".npy", data)
    _load_error(out)


# ======================================================================================
# Threads


def _job(seed, X, y, epochs, timings=None):
    net = dp.Network([32, 128, 128, 1], seed=seed)
    start = time.perf_counter()
    net.fit(X, y, epochs=epochs, batch_size=32, optimizer=dp.Adam(lr=1e-3))
    end = time.perf_counter()
    if timings is not None:
        timings[seed] = (start, end)
    return params_of(net)


def _parallel_capacity():
    """Wall time of two GIL-free jobs in two threads over their sequential time: about 0.5 on an
    idle two-core machine, about 1 when only one core is free."""
    data = bytes(16 * 2**20)

    def work():
        for _ in range(6):
            hashlib.sha256(data).digest()  # releases the GIL
    t0 = time.perf_counter()
    work()
    work()
    seq = time.perf_counter() - t0
    threads = [threading.Thread(target=work) for _ in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - t0) / seq


def test_concurrent_fits_match_sequential_and_overlap(one_blas_thread):
    X, y = regression_data()
    epochs = 10  # about 0.4 s per job
    seeds = (1, 2)
    best_ratio, best_capacity = math.inf, math.inf
    for attempt in range(3):
        t0 = time.perf_counter()
        sequential = {s: _job(s, X, y, epochs) for s in seeds}
        seq_time = time.perf_counter() - t0
        results, timings, errors = {}, {}, []

        def run(s):
            try:
                results[s] = _job(s, X, y, epochs, timings)
            except BaseException as err:  # noqa: BLE001
                errors.append(err)
        threads = [threading.Thread(target=run, args=(s,)) for s in seeds]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        conc_time = time.perf_counter() - t0
        assert not errors, errors
        for s in seeds:
            assert_params_equal(results[s], sequential[s], f"thread result of seed {s}")
        # Both ran at the same time: each started before the other ended.
        (a0, a1), (b0, b1) = timings[1], timings[2]
        assert a0 < b1 and b0 < a1
        best_ratio = min(best_ratio, conc_time / seq_time)
        best_capacity = min(best_capacity, _parallel_capacity())
        if best_ratio < best_capacity + 0.2:
            break
    # Only meaningful when the machine has a second core free right now.
    if best_capacity < 0.75:
        assert best_ratio < best_capacity + 0.2, (
            f"two fits in threads took {best_ratio:.2f} of the sequential time, while GIL-free work "
            f"takes {best_capacity:.2f}: training does not run in parallel")


@RELEASE_BUILD_ONLY
def test_fit_releases_the_gil(one_blas_thread):
    """While a fit runs in another thread, Python code in this one keeps running: no pause is
    anywhere near an epoch (0.1-0.25 s on the project's machines)."""
    X, y = regression_data(n=48000, n_in=32)
    net = dp.Network([32, 128, 128, 1], seed=0)
    done = threading.Event()
    epoch_times = []

    def train():
        try:
            history = net.fit(X, y, epochs=4, batch_size=32, optimizer=dp.Adam(lr=1e-3))
            epoch_times.extend(history.time)
        finally:
            done.set()
    thread = threading.Thread(target=train)
    thread.start()
    gaps, last = [], time.perf_counter()
    while not done.is_set():
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    thread.join()
    epoch = min(epoch_times)
    assert epoch > 0.1, "the workload is too small to tell"
    assert max(gaps) < min(0.1, epoch / 2), (
        f"this thread was blocked for {max(gaps):.3f} s while the other trained ({epoch:.3f} s per epoch)")


@pytest.fixture
def restore_threads():
    before = dp.get_num_threads()
    yield
    dp.set_num_threads(before)


@pytest.mark.parametrize("threads, rows", [(1, 300), (2, 4400)])
def test_predict_from_many_threads_on_one_network(restore_threads, threads, rows):
    """Four Python threads predict at once. With 2 threads and 4,400+ rows (1e7 multiply-adds
    and up) each call also wants predict's shared team: one call at a time gets it, the
    others run their chunks on their own thread."""
    dp.set_num_threads(threads)
    X, y = regression_data(n=512, n_in=32)
    net = dp.Network([32, 64, 4], seed=0)
    net.fit(X, np.repeat(y[:, None], 4, axis=1), epochs=1)
    inputs = [np.random.default_rng(i).standard_normal((rows + i, 32)).astype(np.float32) for i in range(8)]
    expected = [net.predict(x) for x in inputs]
    errors, mismatches = [], []

    def run(i):
        try:
            for _ in range(30):
                for j in range(i, i + len(inputs), 3):
                    k = j % len(inputs)
                    if not np.array_equal(net.predict(inputs[k]), expected[k]):
                        mismatches.append(k)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not mismatches


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_predict_on_two_threads_in_a_forked_child(restore_threads):
    """predict's shared team lives on in the parent; a forked child has none of its
    threads and must start its own instead of waiting for them."""
    dp.set_num_threads(2)
    net = dp.Network([32, 64, 4], seed=0)
    X = np.random.default_rng(0).standard_normal((6000, 32)).astype(np.float32)
    expected = net.predict(X)  # the shared team now exists
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        try:
            same = np.array_equal(net.predict(X), expected) and np.array_equal(net.predict(X), expected)
            os.write(write_end, b"1" if same else b"0")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        import select
        ready, _, _ = select.select([read_end], [], [], 60)
        answer = os.read(read_end, 1) if ready else b""
    finally:
        os.close(read_end)
        if not answer:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert answer == b"1", "the forked child hung or predicted differently"
    assert np.array_equal(net.predict(X), expected)


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_calls_on_a_network_training_in_another_thread_raise_runtime_error(tmp_path, backend):
    X, y = regression_data(n=2000, n_in=16)
    net = dp.Network([16, 64, 1], seed=0, backend=backend)
    started, stop = threading.Event(), threading.Event()
    outcome = {}

    def callback(record):
        started.set()
        return stop.is_set()

    def train():
        try:
            outcome["history"] = net.fit(X, y, epochs=100_000, batch_size=64, callbacks=[callback])
        except BaseException as err:  # noqa: BLE001
            outcome["error"] = err
    thread = threading.Thread(target=train)
    thread.start()
    try:
        assert started.wait(30), "training did not start"
        path = tmp_path / "busy.npz"
        calls = {
            "fit": lambda: net.fit(X, y, epochs=1),
            "predict": lambda: net.predict(X[:3]),
            "predict_classes-like": lambda: net.forward(X[:3]),
            "evaluate": lambda: net.evaluate(X, y),
            "score": lambda: net.score(X, y),
            "gradients": lambda: net.gradients(X[:5], y[:5]),
            "save": lambda: net.save(path),
        }
        for name, fn in calls.items():
            with pytest.raises(RuntimeError) as info:
                fn()
            assert "thread" in str(info.value) or "running" in str(info.value), name
        assert not path.exists(), "save on a busy network wrote a file"
        assert list(tmp_path.iterdir()) == []
    finally:
        stop.set()
        thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert net._busy is None
    assert np.isfinite(net.predict(X[:3])).all()
    net.fit(X[:100], y[:100], epochs=1)


# ======================================================================================
# Limits

INT_MAX = 2**31 - 1


def test_sizes_beyond_32_bit_blas_raise_value_error():
    with pytest.raises(ValueError, match="2147483647"):
        dp.Network([1, 2**31, 1])
    with pytest.raises(ValueError):
        dp.Network([2**31, 1])
    net = dp.Network([2, 1])
    with pytest.raises(ValueError):
        net.fit(np.ones((2, 2)), np.ones(2), batch_size=2**31)
    f32 = np.float32
    wide = np.zeros((0, 2**31), f32)  # zero bytes, but a dimension no 32-bit BLAS can take
    tall = np.zeros((2**31, 0), f32)
    cases = {
        "gemm": lambda: _core.gemm(wide, tall, np.zeros((0, 0), f32)),
        "gemm-C": lambda: _core.gemm(np.zeros((2**31, 0), f32), np.zeros((0, 0), f32), np.zeros((2**31, 0), f32)),
        "dense_forward": lambda: _core.dense_forward(tall, np.zeros((0, 1), f32), np.zeros(1, f32)),
        "dense_backward": lambda: _core.dense_backward(tall, np.zeros((0, 0), f32), np.zeros((2**31, 0), f32)),
        "activation_forward": lambda: _core.activation_forward("relu", tall),
        "activation_backward": lambda: _core.activation_backward("relu", tall, tall, tall),
        "loss_forward": lambda: _core.loss_forward("mse", "identity", tall, tall, tall),
        "loss_backward": lambda: _core.loss_backward("mse", "identity", wide, wide, wide),
        "optimizer_update": lambda: _core.optimizer_update(dp.SGD()._config(0.1), np.zeros((2**31, 0), f32), tall,
                                                           [], 1, 0.0),
        "forward": lambda: _core.forward(tall, [np.zeros((1, 1), f32), np.zeros(1, f32)], ["relu"],
                                         np.zeros((0, 1), f32)),
    }
    for name, fn in cases.items():
        with pytest.raises(ValueError) as info:
            fn()
        assert str(info.value), name


def _run_limited(code, extra_gb=2.0, timeout=240):
    """Runs code in a subprocess whose address space is capped at its start-up size plus
    extra_gb, so a runaway allocation fails there instead of taking the machine down.
    The code sets `result` (a JSON-able value); returns it with the peak-RSS growth (MB)."""
    body = textwrap.indent(textwrap.dedent(code).strip(), "    ")
    script = (
        "import json, resource\n"
        "import numpy as np\n"
        "import denseprop as dp\n"
        "with open('/proc/self/statm') as f:\n"
        "    vm = int(f.read().split()[0]) * resource.getpagesize()\n"
        f"limit = vm + int({extra_gb} * 2**30)\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "result = None\n"
        "try:\n"
        f"{body}\n"
        "except BaseException as err:\n"
        "    result = {'error': type(err).__name__, 'message': str(err)[:500]}\n"
        "rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'result': result, 'rss_growth_mb': (rss1 - rss0) / 1024}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert proc.returncode == 0, f"the subprocess crashed ({proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ram_bytes():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _assert_refused_up_front(out, what):
    result = out["result"]
    assert isinstance(result, dict) and result.get("error") in ("MemoryError", "ValueError"), \
        f"{what}: expected MemoryError or ValueError, got {result}"
    assert result["message"].strip(), f"{what}: empty message"
    assert out["rss_growth_mb"] < 512, (
        f"{what}: the library started allocating ({out['rss_growth_mb']:.0f} MB touched) before "
        f"failing with {result['error']}: {result['message']}")


def test_absurd_network_is_refused():
    out = _run_limited("""
        net = dp.Network([10**6, 10**6, 1])
        result = "built"
    """)
    _assert_refused_up_front(out, "Network([10**6, 10**6, 1])")


def test_network_larger_than_ram_is_refused_before_allocating():
    """Many layers each small enough to allocate, together far beyond physical memory: the
    constructor must refuse up front instead of filling memory layer by layer (which, without
    the cap this test sets, ends in the kernel's OOM killer)."""
    width = 8000
    layers = math.ceil(1.5 * _ram_bytes() / (width * width * 4)) + 1
    out = _run_limited(f"""
        net = dp.Network([{width}] * {layers})
        result = "built"
    """, extra_gb=2.0)
    _assert_refused_up_front(out, f"Network([{width}] * {layers})")


def test_fit_whose_workspace_exceeds_ram_is_refused_before_allocating():
    """Small weights and data, but a batch whose per-layer workspace is far beyond RAM."""
    batch, width = 65536, 4096
    per_layer = batch * width * 4
    k = math.ceil(1.5 * _ram_bytes() / per_layer)
    out = _run_limited(f"""
        layers = [1] + [{width}, 1] * {k}
        net = dp.Network(layers, activation="relu", seed=0)
        X = np.zeros(({batch}, 1), np.float32)
        net.fit(X, np.zeros({batch}, np.float32), epochs=1, batch_size={batch})
        result = "trained"
    """, extra_gb=2.0)
    _assert_refused_up_front(out, f"fit with batch {batch} on {k} layers of width {width}")


def test_out_of_memory_errors_say_what_is_too_big():
    """A refused huge batch names the problem (not a bare 'std::bad_alloc')."""
    out = _run_limited("""
        net = dp.Network([1, 2**20, 1], seed=0)
        net.fit(np.zeros((2**16, 1)), np.zeros(2**16), batch_size=2**16)
        result = "trained"
    """)
    result = out["result"]
    assert isinstance(result, dict) and result.get("error") in ("MemoryError", "ValueError"), result
    message = result["message"]
    assert message.strip() and "bad_alloc" not in message, f"unhelpful message: {message!r}"


# ======================================================================================
# Documented error classes


def _divergent_fit():
    net = dp.Network([2, 4, 1], seed=0)
    net.fit(np.ones((8, 2)) * 1e3, np.ones(8) * 1e3, epochs=3, lr=1e30)


ERROR_TABLE = [
    # Network(...)
    ("layers not a list", lambda: dp.Network("3,1"), TypeError),
    ("layers one width", lambda: dp.Network([3]), ValueError),
    ("layer width zero", lambda: dp.Network([3, 0]), ValueError),
    ("layer width float", lambda: dp.Network([3, 1.0]), TypeError),
    ("layer width bool", lambda: dp.Network([True, 1]), TypeError),
    ("unknown activation", lambda: dp.Network([2, 3, 1], activation="nope"), ValueError),
    ("activation not a str", lambda: dp.Network([2, 3, 1], activation=3), TypeError),
    ("activation list length", lambda: dp.Network([2, 3, 1], activation=["relu", "relu"]), ValueError),
    ("softmax hidden", lambda: dp.Network([2, 3, 2], activation="softmax"), ValueError),
    ("cross-entropy identity", lambda: dp.Network([2, 2], loss="cross_entropy"), ValueError),
    ("softmax with mse", lambda: dp.Network([2, 2], output_activation="softmax"), ValueError),
    ("softmax one output", lambda: dp.Network([2, 1], output_activation="softmax", loss="cross_entropy"),
     ValueError),
    ("unknown loss", lambda: dp.Network([2, 1], loss="nll"), ValueError),
    ("unknown dtype", lambda: dp.Network([2, 1], dtype="float16"), ValueError),
    ("dtype not a dtype", lambda: dp.Network([2, 1], dtype=5), TypeError),
    ("negative seed", lambda: dp.Network([2, 1], seed=-1), ValueError),
    ("float seed", lambda: dp.Network([2, 1], seed=1.5), TypeError),
    ("unknown backend", lambda: dp.Network([2, 1], backend="gpu"), ValueError),
    ("unknown init", lambda: dp.Network([2, 1], init="xavier"), ValueError),
    ("init shape", lambda: dp.Network([2, 1], init=([np.zeros((1, 2))], [np.zeros(1)])), ValueError),
    ("init NaN", lambda: dp.Network([2, 1], init=([np.full((2, 1), np.nan)], None)), ValueError),
    ("bias_init NaN", lambda: dp.Network([2, 1], bias_init=float("nan")), ValueError),
    ("bias_init str", lambda: dp.Network([2, 1], bias_init="0"), TypeError),
    ("bias_init beyond float32", lambda: dp.Network([2, 1], bias_init=1e300), ValueError),
    # fit
    ("X wrong width", lambda: dp.Network([2, 1]).fit(np.ones((3, 3)), np.ones(3)), ValueError),
    ("X 1-D", lambda: dp.Network([2, 1]).fit(np.ones(3), np.ones(3)), ValueError),
    ("X complex", lambda: dp.Network([2, 1]).fit(np.ones((3, 2), complex), np.ones(3)), TypeError),
    ("X strings", lambda: dp.Network([2, 1]).fit([["a", "b"]], [1.0]), TypeError),
    ("X object", lambda: dp.Network([2, 1]).fit(np.ones((3, 2), object), np.ones(3)), TypeError),
    ("X NaN", lambda: dp.Network([2, 1]).fit(np.full((3, 2), np.nan), np.ones(3)), ValueError),
    ("X beyond float32", lambda: dp.Network([2, 1]).fit(np.full((3, 2), 1e300), np.ones(3)), ValueError),
    ("X empty", lambda: dp.Network([2, 1]).fit(np.ones((0, 2)), np.ones(0)), ValueError),
    ("y rows", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(4)), ValueError),
    ("y inf", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.full(3, np.inf)), ValueError),
    ("labels out of range", lambda: dp.Network([2, 3], output_activation="softmax", loss="cross_entropy")
     .fit(np.ones((3, 2)), np.array([0, 1, 3])), ValueError),
    ("float labels", lambda: dp.Network([2, 3], output_activation="softmax", loss="cross_entropy")
     .fit(np.ones((3, 2)), np.array([0.0, 1.0, 2.0])), ValueError),
    ("epochs negative", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), epochs=-1), ValueError),
    ("epochs float", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), epochs=1.0), TypeError),
    ("batch_size zero", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), batch_size=0), ValueError),
    ("batch_size bool", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), batch_size=True),
     TypeError),
    ("lr zero", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), lr=0), ValueError),
    ("lr NaN", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), lr=float("nan")), ValueError),
    ("lr str", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), lr="0.1"), TypeError),
    ("lr and optimizer", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), lr=0.1,
                                                         optimizer=dp.SGD()), TypeError),
    ("optimizer str", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), optimizer="adam"),
     TypeError),
    ("shuffle int", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), shuffle=1), TypeError),
    ("sample_weight negative", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3),
                                                               sample_weight=-np.ones(3)), ValueError),
    ("sample_weight length", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3),
                                                             sample_weight=np.ones(2)), ValueError),
    ("validation_split one", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), validation_split=1.0),
     ValueError),
    ("validation_split leaves no training rows", lambda: dp.Network([2, 1]).fit(
        np.ones((3, 2)), np.ones(3), validation_split=0.999), ValueError),
    ("validation_data not a tuple", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3),
                                                                    validation_data=np.ones((3, 2))), TypeError),
    ("validation and split", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), validation_split=0.5,
                                                             validation_data=(np.ones((3, 2)), np.ones(3))),
     ValueError),
    ("early_stopping int", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), early_stopping=3),
     TypeError),
    ("callback not callable", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), callbacks=[3]),
     TypeError),
    ("verbose negative", lambda: dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), verbose=-1), ValueError),
    ("divergence", _divergent_fit, dp.DivergenceError),
    ("divergence is arithmetic", _divergent_fit, ArithmeticError),
    # inference
    ("predict wrong width", lambda: dp.Network([2, 1]).predict(np.ones((3, 3))), ValueError),
    ("predict None", lambda: dp.Network([2, 1]).predict(None), TypeError),
    ("predict_classes on mse", lambda: dp.Network([2, 1]).predict_classes(np.ones((3, 2))), ValueError),
    ("predict_proba on mse", lambda: dp.Network([2, 1]).predict_proba(np.ones((3, 2))), ValueError),
    ("evaluate y rows", lambda: dp.Network([2, 1]).evaluate(np.ones((3, 2)), np.ones(2)), ValueError),
    ("gradients y None", lambda: dp.Network([2, 1]).gradients(np.ones((3, 2)), None), TypeError),
    ("replaced weights", lambda: _replaced_weights().predict(np.ones((1, 2))), ValueError),
    ("backend switch unknown", lambda: setattr(dp.Network([2, 1]), "backend", "gpu"), ValueError),
    # optimizers, schedules, early stopping
    ("SGD lr zero", lambda: dp.SGD(lr=0), ValueError),
    ("SGD lr str", lambda: dp.SGD(lr="1"), TypeError),
    ("SGD momentum one", lambda: dp.SGD(momentum=1.0), ValueError),
    ("SGD nesterov without momentum", lambda: dp.SGD(nesterov=True), ValueError),
    ("SGD nesterov int", lambda: dp.SGD(momentum=0.9, nesterov=1), TypeError),
    ("SGD weight_decay negative", lambda: dp.SGD(weight_decay=-1), ValueError),
    ("SGD schedule str", lambda: dp.SGD(schedule="step"), TypeError),
    ("Adam beta1 one", lambda: dp.Adam(beta1=1.0), ValueError),
    ("Adam eps zero", lambda: dp.Adam(eps=0), ValueError),
    ("Adam lr inf", lambda: dp.Adam(lr=float("inf")), ValueError),
    ("StepDecay zero", lambda: dp.StepDecay(0), ValueError),
    ("StepDecay float", lambda: dp.StepDecay(1.5), TypeError),
    ("StepDecay gamma zero", lambda: dp.StepDecay(1, gamma=0), ValueError),
    ("InverseScaling negative", lambda: dp.InverseScaling(-1), ValueError),
    ("ReduceOnPlateau factor one", lambda: dp.ReduceOnPlateau(factor=1.0), ValueError),
    ("ReduceOnPlateau patience float", lambda: dp.ReduceOnPlateau(patience=1.5), TypeError),
    ("EarlyStopping patience negative", lambda: dp.EarlyStopping(patience=-1), ValueError),
    ("EarlyStopping restore_best int", lambda: dp.EarlyStopping(restore_best=1), TypeError),
    # threads
    ("set_num_threads zero", lambda: dp.set_num_threads(0), ValueError),
    ("set_num_threads float", lambda: dp.set_num_threads(1.5), TypeError),
    ("set_num_threads bool", lambda: dp.set_num_threads(True), TypeError),
    # files
    ("load missing", lambda: dp.Network.load("/nonexistent/denseprop/model.npz"), FileNotFoundError),
    ("load directory", lambda: dp.Network.load("/"), OSError),
    ("load path None", lambda: dp.Network.load(None), TypeError),
    ("save path None", lambda: dp.Network([2, 1]).save(None), TypeError),
    ("save into missing directory", lambda: dp.Network([2, 1]).save("/nonexistent/denseprop/m.npz"),
     FileNotFoundError),
]


def _replaced_weights():
    net = dp.Network([2, 1])
    net.weights[0] = np.ones((2, 1))  # float64 into a float32 network
    return net


@pytest.mark.parametrize("name,fn,expected", ERROR_TABLE, ids=[e[0] for e in ERROR_TABLE])
def test_documented_error_class(name, fn, expected):
    before = dp.get_num_threads()
    try:
        with pytest.raises(Exception) as info:
            fn()
    finally:
        _core.set_num_threads(before)
    err = info.value
    assert isinstance(err, expected), f"{name}: expected {expected.__name__}, got {type(err).__name__}: {err}"
    if expected in (ValueError, TypeError):
        assert type(err) in (ValueError, TypeError), \
            f"{name}: raised {type(err).__name__}, a subclass nobody documents"
    assert str(err).strip(), f"{name}: {type(err).__name__} without a message"


def test_error_hierarchy():
    assert issubclass(dp.DivergenceError, ArithmeticError)
    assert not issubclass(dp.DivergenceError, ValueError)
    err = dp.DivergenceError("msg", 3, dp.History())
    assert err.epoch == 3 and isinstance(err.history, dp.History) and str(err) == "msg"


# ======================================================================================
# Determinism


def _train_hash(backend, threads, seed=42):
    before = dp.get_num_threads()
    dp.set_num_threads(threads)
    try:
        X, y = regression_data(n=1024, n_in=64, seed=1)
        net = dp.Network([64, 256, 256, 8], activation="gelu", seed=seed, backend=backend)
        net.fit(X, np.repeat(y[:, None], 8, axis=1), epochs=2, batch_size=128,
                optimizer=dp.Adam(lr=1e-3, weight_decay=1e-4))
        h = hashlib.sha256()
        for p in net.weights + net.biases + net.optimizer.state:
            h.update(p.tobytes())
        return h.hexdigest()
    finally:
        dp.set_num_threads(before)


@pytest.mark.parametrize("backend,threads", [("cpp", 1), ("cpp", 2), ("numpy", 1)])
def test_same_seed_and_threads_give_bit_identical_weights(backend, threads):
    first = _train_hash(backend, threads)
    assert all(_train_hash(backend, threads) == first for _ in range(2))


def test_determinism_across_processes():
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from test_reliability import _train_hash
        print(_train_hash("cpp", 2))
    """ % os.path.dirname(os.path.abspath(__file__)))
    outs = set()
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.add(proc.stdout.strip().splitlines()[-1])
    assert len(outs) == 1, "two processes trained different weights from the same seed"


# ======================================================================================
# Memory


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _build_type():
    path = pathlib.Path(_core.__file__).resolve()
    for parent in path.parents:
        cache = parent / "CMakeCache.txt"
        if cache.is_file():
            for line in cache.read_text(errors="replace").splitlines():
                if line.startswith("CMAKE_BUILD_TYPE"):
                    return line.split("=", 1)[1].strip()
    return "Release"  # a wheel


needs_release = pytest.mark.skipif(_build_type() not in ("Release", "RelWithDebInfo", "MinSizeRel"),
                                   reason="memory is only measured on an optimised build")


def _workload(net, X, y, Xb, i, tmp_path=None):
    net.fit(X, y, epochs=1, batch_size=16)
    net.predict(X)
    net.evaluate(X, y)
    net.gradients(X[:8], y[:8])
    with contextlib.suppress(ValueError):  # a rejected call, thrown from the C++
        _core.forward(Xb, net._params(), net.activations, np.empty((X.shape[0], 2), np.float32))
    with contextlib.suppress(ValueError):  # rejected in Python
        net.fit(X, y[:-1])
    if tmp_path is not None and i % 10 == 0:
        net.save(tmp_path / "m.npz")
        dp.Network.load(tmp_path / "m.npz")


def _memory_growth(iterations, tmp_path=None):
    X, y = regression_data(n=64, n_in=8)
    Xb = np.ones((64, 9), np.float32)
    nets = [dp.Network([8, 16, 1], seed=0), dp.Network([8, 16, 1], seed=1, backend="numpy")]
    nets[0].fit(X, y, epochs=1, optimizer=dp.Adam())
    for i in range(300):  # warm up caches and allocator pools
        _workload(nets[i % 2], X, y, Xb, i, tmp_path)
    start = _rss_bytes()
    peak = start
    for i in range(iterations):
        _workload(nets[i % 2], X, y, Xb, i, tmp_path)
        if i % 500 == 0:
            peak = max(peak, _rss_bytes())
    return max(peak, _rss_bytes()) - start


@needs_release
@RELEASE_BUILD_ONLY
def test_memory_stays_flat_over_thousands_of_calls():
    growth = _memory_growth(3000)
    assert growth < 6 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MB over 3000 iterations"


@needs_release
@pytest.mark.slow
def test_memory_stays_flat_over_a_long_soak(tmp_path):
    growth = _memory_growth(40000, tmp_path)
    assert growth < 8 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MB over 40000 iterations"
