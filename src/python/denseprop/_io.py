"""Model files: a versioned, self-describing .npz archive, written atomically, never pickled.

Layout: ``meta`` (a JSON string: format and library version, layers, activations, loss,
dtype, optimizer with its schedule, random-generator state and a SHA-256 checksum of
everything else), ``W0, b0, W1, b1, ...`` and the optimizer's state arrays ``S0, S1, ...``.
A table model (``denseprop.tabular.TableModel``) adds a ``table`` entry to ``meta``: its
columns, scaling, categories, classes and task.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import secrets
import zipfile

import numpy as np

from . import __version__
from .optimizers import Optimizer, Schedule, subclasses

FORMAT = "denseprop"
# 1: networks; 2: adds the optional "table" entry of table models (format 1 files still load).
FORMAT_VERSION = 2


def _checksum(meta: dict, arrays: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True).encode())
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save_network(net, path, table=None) -> None:
    """Writes net to path; `table` (a JSON-ready dict) makes it a table model's file."""
    path = os.fspath(path)
    opt = net.optimizer
    arrays = {}
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"W{l}"], arrays[f"b{l}"] = w, b
    for i, s in enumerate(opt.state):
        arrays[f"S{i}"] = s
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "layers": net.layers,
        "activation": net.activation,
        "output_activation": net.output_activation,
        "loss": net.loss,
        "dtype": net.dtype.name,
        "backend": net.backend,
        "seed": net.seed,
        "init": net.init,
        "optimizer": {
            "class": type(opt).__name__,
            "config": opt.get_config(),
            "schedule": {"class": type(opt.schedule).__name__, "config": opt.schedule.get_config(),
                         "state": opt.schedule.get_state()},
            "step": int(opt.step),
            "epochs": int(opt.epochs),
            "n_state": len(opt.state),
        },
        "rng": net._rng.bit_generator.state,
    }
    if table is not None:
        meta["table"] = table
    meta["checksum"] = _checksum(meta, arrays)
    write_atomically(path, lambda f: np.savez(f, meta=np.array(json.dumps(meta)), **arrays))


def write_atomically(path, write) -> None:
    """Calls write(f) on a temporary file beside path, then renames it onto path, so a crash
    midway leaves an earlier file intact. Errors name the path the user gave; the file's mode
    follows the umask, as for any file the user writes."""
    path = os.fsdecode(os.fspath(path))
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "cannot save onto a directory; give a file name such as "
                                "model.npz", path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "no such directory to save into; create it first", path)
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:  # about the directory, but named as the user's path
        raise type(err)(err.errno, err.strerror, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class _Damaged(ValueError):
    pass


def _member_array(zf, info):
    """One .npy member, checked against its own header before anything is allocated: a
    header that claims more data than the member holds is damage, not a reason to allocate."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise _Damaged(f"record {info.filename!r} has an unknown .npy version {version}")
        if dtype.hasobject:
            raise _Damaged(f"record {info.filename!r} holds Python objects, which are never unpickled")
        count = 1
        for dim in shape:
            count *= int(dim)
        header_end = f.tell()
        if count * dtype.itemsize != info.file_size - header_end:
            raise _Damaged(f"record {info.filename!r} claims shape {shape} of {dtype}, which does not "
                           f"match its {info.file_size - header_end} bytes of data")
        data = f.read(count * dtype.itemsize)
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C")


def _read(path):
    """(meta, arrays) of a model file; ValueError for anything that is not a sound one."""
    with open(path, "rb") as f:  # a missing or unreadable file raises Python's own OSError
        data = f.read()
    if not data:
        raise _Damaged("the file is empty")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = {info.filename: info for info in zf.infolist()}
            if "meta.npy" not in infos:
                raise _Damaged("it has no 'meta' record")
            arrays = {}
            for filename, info in infos.items():
                if not filename.endswith(".npy"):
                    raise _Damaged(f"it holds an unexpected record {filename!r}")
                arrays[filename[:-4]] = _member_array(zf, info)
        meta = json.loads(str(arrays.pop("meta")[()]))
    except _Damaged:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError, IndexError, ValueError,
            TypeError, UnicodeDecodeError, RuntimeError, OverflowError, MemoryError) as err:
        raise _Damaged(f"it is truncated, damaged or not an .npz archive ({type(err).__name__}: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _Damaged("it is not a denseprop model (no 'format': 'denseprop' in its metadata)")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Damaged("its format version is missing")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer denseprop (file format {version}, library "
                         f"{meta.get('library_version')}); this denseprop {__version__} reads format "
                         f"{FORMAT_VERSION} and older: upgrade denseprop to load it")
    if meta.get("checksum") != _checksum(meta, arrays):
        raise _Damaged("its checksum does not match its contents: it was edited by hand or damaged")
    return meta, arrays


def load_network(cls, path, backend=None):
    net, table = load_model(cls, path, backend)
    if table is not None:
        raise ValueError(f"{os.fspath(path)} is a table model (written by `denseprop train`): Network.load "
                         "would drop its column scaling and encoding and predict wrongly; load it with "
                         "denseprop.tabular.TableModel.load")
    return net


def load_model(cls, path, backend=None):
    """(network, table entry or None) of a model file."""
    path = os.fspath(path)
    try:
        meta, arrays = _read(path)
        table = meta.get("table")
        if table is not None and not isinstance(table, dict):
            raise _Damaged("its 'table' entry is not a mapping")
        return _build(cls, meta, arrays, backend), table
    except _Damaged as err:
        raise ValueError(f"cannot load {path}: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, MemoryError) as err:
        if isinstance(err, ValueError) and str(err).startswith(path):
            raise
        raise ValueError(f"cannot load {path}: its metadata is inconsistent ({type(err).__name__}: {err})") from None


def _is_count(value, limit):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit


def _is_pcg64_state(state):
    """NumPy's PCG64 state: 128-bit integers (NumPy would take a float there and round it)."""
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64" or not isinstance(state.get("state"), dict):
        return False
    inner = state["state"]
    return (_is_count(inner.get("state"), 2**128) and _is_count(inner.get("inc"), 2**128)
            and _is_count(state.get("has_uint32", 0), 2) and _is_count(state.get("uinteger", 0), 2**32))


def _build(cls, meta, arrays, backend):
    layers = meta["layers"]
    n_layers = len(layers) - 1
    weights, biases = [], []
    for l in range(n_layers):
        for name, out in ((f"W{l}", weights), (f"b{l}", biases)):
            if name not in arrays:
                raise _Damaged(f"parameter {name} is missing")
            if arrays[name].dtype != np.dtype(meta["dtype"]):
                raise _Damaged(f"parameter {name} has dtype {arrays[name].dtype}, not {meta['dtype']}")
            out.append(arrays[name])
    net = cls(layers, activation=meta["activation"], output_activation=meta["output_activation"],
              loss=meta["loss"], dtype=meta["dtype"], seed=meta["seed"],
              backend=backend if backend is not None else meta["backend"], init=(weights, biases))
    net.init = meta["init"]
    rng_state = meta["rng"]
    if not _is_pcg64_state(rng_state):
        raise _Damaged("its random-generator state is not a PCG64 state")
    net._rng.bit_generator.state = rng_state

    o = meta["optimizer"]
    opt_cls, sched_cls = subclasses(Optimizer).get(o["class"]), subclasses(Schedule).get(o["schedule"]["class"])
    if opt_cls is None or sched_cls is None:
        raise _Damaged(f"unknown optimizer {o['class']!r} or schedule {o['schedule']['class']!r}")
    schedule = sched_cls(**o["schedule"]["config"])
    schedule.set_state(o["schedule"]["state"])
    opt = opt_cls(**o["config"], schedule=schedule)
    params = net._params()
    k = opt.states_per_param()
    if o["n_state"] != k * len(params):
        raise _Damaged(f"the optimizer needs {k * len(params)} state arrays, the file lists {o['n_state']}")
    state = []
    for i in range(o["n_state"]):
        s = arrays.get(f"S{i}")
        p = params[i // k]
        if s is None or s.shape != p.shape or s.dtype != p.dtype:
            raise _Damaged(f"optimizer state S{i} is missing or does not match parameter shape {p.shape}")
        state.append(np.array(s, order="C"))
    for key in ("step", "epochs"):
        if not _is_count(o[key], 2**62):
            raise _Damaged(f"the optimizer's {key} count {o[key]!r} is not a count")
    opt.state, opt.step, opt.epochs, opt._owner = state, o["step"], o["epochs"], net
    net.optimizer = opt
    return net
