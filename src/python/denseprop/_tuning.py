"""The Python side's tuning constants, each with its reason. The measurements behind them are
in benchmarks/README.md, section "Tuning constants", under "Python: " and the constant's name."""

# NaN/inf checks of inputs run in steps of this many elements: no temporary of the input's size.
FINITE_CHUNK = 1 << 20

# Up to this many columns, float64 column sums are strided 1-D sums (NumPy's axis-0 reduction
# of a narrow array is slower); R^2 of up to this many outputs is computed in Python floats
# (NumPy's per-call overhead costs more than the arithmetic).
NARROW_COLUMNS = 16

# A divergence with regression targets beyond this magnitude is blamed on the targets' scale:
# with inputs scaled to unit variance, a net's first outputs are O(1), so targets in the
# hundreds give gradients a hundred times larger than the learning rate was chosen for.
LARGE_TARGETS = 100.0
