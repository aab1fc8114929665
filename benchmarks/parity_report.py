"""Prints the largest C++/reference differences, max|a-b|/max|b|, over single operations and
whole 4-epoch fits (SGD, Nesterov SGD, Adam) for float32 and float64:

    python benchmarks/parity_report.py
"""
import numpy as np, denseprop as dp
from denseprop import _core as C, reference as R
def rel(a, b):
    a = np.asarray(a, np.float64); b = np.asarray(b, np.float64); return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)
out = {}
for dt in (np.float32, np.float64):
    op, fit = 0.0, 0.0
    rng = np.random.default_rng(0)
    for M, K, N in [(1,1,1),(1,2,2),(7,5,3),(32,64,8),(64,33,65),(128,256,96)]:
        X, W, b, dZ = [rng.standard_normal(s).astype(dt) for s in ((M,K),(K,N),(N,),(M,N))]
        op = max(op, rel(C.dense_forward(X,W,b), R.dense_forward(X,W,b)))
        op = max(op, max(rel(x,y) for x,y in zip(C.dense_backward(X,W,dZ), R.dense_backward(X,W,dZ))))
    Z = (rng.standard_normal((33,7))*3).astype(dt); dH = rng.standard_normal((33,7)).astype(dt)
    for a in R.ACTIVATIONS:
        H = R.activation_forward(a, Z)
        op = max(op, rel(C.activation_forward(a, Z), H), rel(C.activation_backward(a, Z, H, dH), R.activation_backward(a, Z, H, dH)))
    for layers, batch in [([1,2,2],1),([3,8,8,8,8,8,2],7),([16,300,4],32),([5,12,6],1),([4,10,3],8),([10,64,64,1],32)]:
        Xf = rng.standard_normal((100, layers[0])).astype(dt); Yf = np.tanh(Xf @ rng.standard_normal((layers[0], layers[-1]))).astype(dt)
        for opt in (lambda: dp.SGD(0.005), lambda: dp.SGD(0.002, momentum=0.9, nesterov=True), lambda: dp.Adam(0.002)):
            a = dp.Network(layers, dtype=dt.__name__, seed=1); b = dp.Network(layers, dtype=dt.__name__, seed=1, backend="numpy")
            a.fit(Xf, Yf, epochs=4, batch_size=batch, optimizer=opt()); b.fit(Xf, Yf, epochs=4, batch_size=batch, optimizer=opt())
            fit = max(fit, max(rel(x, y) for x, y in zip(a.weights + a.biases, b.weights + b.biases)))
    out[dt.__name__] = (op, fit)
for k, (op, fit) in out.items(): print(f"{k}: one operation {op:.2e}, 4-epoch fit {fit:.2e}")
