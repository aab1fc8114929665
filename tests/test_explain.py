"""python -m denseprop explain: every printed number recomputed by hand, in plain Python floats."""

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

from denseprop.__main__ import main

PRINTED = 0.5e-6 + 1e-12  # the walk-through prints 6 decimals


def run(capsys, *args):
    assert main(["explain", *args]) == 0
    return capsys.readouterr().out


def parse_values(text):
    """A printed number, [...] or [[...]], as a float or nested lists (the format is JSON's)."""
    return json.loads(text)


def printed(out):
    """{"start": {name: value}, 1: {name: value}, 2: ...}: the values the walk-through printed."""
    blocks, current = {}, None
    for line in out.splitlines():
        if line.startswith("Starting parameters"):
            current = blocks.setdefault("start", {})
        elif m := re.match(r"Step (\d+)$", line):
            current = blocks.setdefault(int(m.group(1)), {})
        elif m := re.match(r"After \d+ steps?: C = (\S+) \(it was (\S+)\); yhat = (\[.*\]), y", line):
            blocks["end"] = {"C": float(m.group(1)), "C0": float(m.group(2)), "yhat": parse_values(m.group(3))}
        elif line.startswith("    "):  # "    name = [formula =] value    [(note)]"
            text = re.sub(r"\s{4}\(.*\)$", "", line)
            current[text.split()[0]] = parse_values(text.rsplit(" = ", 1)[1])
    return blocks


def he_start(seed):
    """The documented He draw, independently: randn(fan_in, fan_out) * sqrt(2 / fan_in), biases 0.1."""
    rng = np.random.default_rng(seed)
    Wh = (rng.standard_normal((1, 2)) * math.sqrt(2.0)).tolist()
    Wo = (rng.standard_normal((2, 2)) * math.sqrt(1.0)).tolist()
    return Wh, [0.1, 0.1], Wo, [0.1, 0.1]


def relu(v):
    return v if v > 0 else 0.0


def hand_steps(x, y, lr, steps, Wh, Bh, Wo, Bo):
    """The textbook by hand: for each step the dict of every quantity, with scalar arithmetic."""
    out = []
    for _ in range(steps):
        Zh = [x * Wh[0][j] + Bh[j] for j in range(2)]
        H = [relu(z) for z in Zh]
        Zo = [H[0] * Wo[0][k] + H[1] * Wo[1][k] + Bo[k] for k in range(2)]
        yhat = [relu(z) for z in Zo]
        C = 0.5 * sum((yhat[k] - y[k]) ** 2 for k in range(2))
        do = [1.0 if z > 0 else 0.0 for z in Zo]
        Eo = [(yhat[k] - y[k]) * do[k] for k in range(2)]
        dh = [1.0 if z > 0 else 0.0 for z in Zh]
        Eh = [(Eo[0] * Wo[j][0] + Eo[1] * Wo[j][1]) * dh[j] for j in range(2)]
        dWo = [[H[j] * Eo[k] for k in range(2)] for j in range(2)]
        dWh = [[x * Eh[j] for j in range(2)]]
        step = {"Zh": Zh, "H": H, "Zo": Zo, "yhat": yhat, "C": C, "relu'(Zo)": do, "Eo": Eo,
                "relu'(Zh)": dh, "Eh": Eh, "dWo": dWo, "dBo": Eo, "dWh": dWh, "dBh": Eh}
        Wo = [[Wo[j][k] - lr * dWo[j][k] for k in range(2)] for j in range(2)]
        Bo = [Bo[k] - lr * Eo[k] for k in range(2)]
        Wh = [[Wh[0][j] - lr * dWh[0][j] for j in range(2)]]
        Bh = [Bh[j] - lr * Eh[j] for j in range(2)]
        step.update({"Wo": Wo, "Bo": Bo, "Wh": Wh, "Bh": Bh})
        out.append(step)
    return out


def assert_close(got, want, what):
    g, w = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert g.shape == w.shape, what
    assert np.abs(g - w).max() <= PRINTED, f"{what}: printed {got}, by hand {want}"


@pytest.mark.parametrize("args,seed,x,y,lr,steps", [
    ((), 0, 0.5, [0.3, 0.7], 0.1, 3),
    (("--steps", "4", "--seed", "3", "--x", "-1.25", "--y", "0.1,0.9", "--lr", "0.5"), 3, -1.25, [0.1, 0.9], 0.5, 4),
    (("--x", "-1", "--steps", "2"), 0, -1.0, [0.3, 0.7], 0.1, 2),  # hidden unit 0 is off: relu' = 0
    (("--seed", "11", "--x", "2", "--y=-0.5,3", "--lr", "0.05"), 11, 2.0, [-0.5, 3.0], 0.05, 3),
])
def test_every_printed_number_matches_a_hand_computation(capsys, args, seed, x, y, lr, steps):
    out = run(capsys, *args)
    blocks = printed(out)
    Wh, Bh, Wo, Bo = he_start(seed)
    for name, want in zip(("Wh", "Bh", "Wo", "Bo"), (Wh, Bh, Wo, Bo)):
        assert_close(blocks["start"][name], want, f"start {name}")
    hand = hand_steps(x, y, lr, steps, Wh, Bh, Wo, Bo)
    assert sorted(k for k in blocks if isinstance(k, int)) == list(range(1, steps + 1))
    for s, want in enumerate(hand, start=1):
        assert set(blocks[s]) == set(want), f"step {s} prints {sorted(blocks[s])}"
        for name, value in want.items():
            assert_close(blocks[s][name], value, f"step {s} {name}")
    C0 = hand[0]["C"]
    last = hand_steps(x, y, lr, steps + 1, Wh, Bh, Wo, Bo)[-1]  # the state after `steps` updates
    assert_close(blocks["end"]["C"], last["C"], "final cost")
    assert_close(blocks["end"]["C0"], C0, "starting cost")
    assert_close(blocks["end"]["yhat"], last["yhat"], "final yhat")


def test_the_default_walk_through_has_live_units_and_learns(capsys):
    blocks = printed(run(capsys))
    assert blocks[1]["relu'(Zh)"] == [1, 1] and blocks[1]["relu'(Zo)"] == [1, 1]
    assert blocks["end"]["C"] < blocks["end"]["C0"]


def test_formulas_are_printed_beside_the_values(capsys):
    out = run(capsys, "--steps", "1")
    for formula in ("x Wh + Bh", "relu(Zh)", "H Wo + Bo", "relu(Zo)", "0.5 sum((yhat - y)^2)",
                    "(yhat - y) * relu'(Zo)", "(Eo Wo^T) * relu'(Zh)", "H^T Eo", "x^T Eh", "Wo - lr dWo"):
        assert formula in out, formula
    assert "He initialisation, seed 0" in out and "[1, 2, 2]" in out


@pytest.mark.parametrize("args,message", [
    (("--y", "1,2,3"), "expected 2 comma-separated numbers"),
    (("--y", "1,x"), "expected a number"),
    (("--lr", "0"), "expected a number > 0"),
    (("--lr", "nan"), "finite"),
    (("--x", "inf"), "finite"),
    (("--steps", "0"), "expected an integer >= 1"),
    (("--seed", "-1"), "expected an integer >= 0"),
    (("--steps", "two"), "expected an integer"),
])
def test_bad_options_give_a_one_line_error_and_exit_code_2(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["explain", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().splitlines()[-1].startswith("denseprop explain: error:")


def test_divergence_is_a_one_line_message_and_exit_code_1():
    proc = subprocess.run([sys.executable, "-m", "denseprop", "explain", "--lr", "1e300", "--steps", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "diverged" in lines[0] and "Lower the learning rate" in lines[0]
