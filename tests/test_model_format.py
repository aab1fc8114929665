"""Model file format 2: files of format 1 still load; table models are refused by Network.load."""

import json
import pathlib

import numpy as np
import pytest

import denseprop as dp
from denseprop import _io

DATA = pathlib.Path(__file__).parent / "data"


def _meta(path):
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(str(npz["meta"][()]))


def test_format_1_file_still_loads_and_predicts_as_before():
    # Written by denseprop 0.1.0 at commit c8957a5, before format 2: a [3, 4, 2] tanh/softmax
    # float64 network after two Adam epochs; the predictions below were printed then.
    path = DATA / "network_format1.npz"
    assert _meta(path)["format_version"] == 1
    net = dp.Network.load(path)
    assert net.layers == [3, 4, 2] and net.activations == ["tanh", "softmax"] and net.dtype == np.float64
    assert type(net.optimizer) is dp.Adam and net.optimizer.step == 6 and net.optimizer.epochs == 2
    X = np.linspace(-2, 2, 30).reshape(10, 3)
    np.testing.assert_allclose(net.predict(X[:3]), [[0.5438549134959919, 0.456145086504008],
                                                    [0.5312148486707933, 0.46878515132920673],
                                                    [0.5158404625518247, 0.4841595374481753]],
                               rtol=0, atol=1e-12)


def test_new_files_are_format_2_and_round_trip(tmp_path):
    net = dp.Network([2, 3, 1], seed=0)
    net.save(tmp_path / "n.npz")
    assert _meta(tmp_path / "n.npz")["format_version"] == 2 == _io.FORMAT_VERSION
    assert "table" not in _meta(tmp_path / "n.npz")
    loaded = dp.Network.load(tmp_path / "n.npz")
    np.testing.assert_array_equal(loaded.weights[0], net.weights[0])


def test_network_load_refuses_a_table_model_and_names_table_model(tmp_path):
    net = dp.Network([2, 3, 1], seed=0)
    path = tmp_path / "table.npz"
    _io.save_network(net, path, table={"task": "regression"})
    with pytest.raises(ValueError, match="TableModel") as info:
        dp.Network.load(path)
    assert str(path) in str(info.value)
    loaded, table = _io.load_model(dp.Network, path)
    assert table == {"task": "regression"}
    np.testing.assert_array_equal(loaded.weights[1], net.weights[1])


def test_table_entry_is_covered_by_the_checksum(tmp_path):
    path = tmp_path / "table.npz"
    _io.save_network(dp.Network([2, 1]), path, table={"task": "regression", "target": "y"})
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("meta")[()]))
    meta["table"]["target"] = "z"
    with open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(ValueError, match="checksum"):
        _io.load_model(dp.Network, path)
