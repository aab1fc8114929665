// Every tuning constant of the C++ backend, each with the reason for its value. The
// measurements behind them are in benchmarks/README.md, section "Tuning constants", under the
// heading named after the constant.
#pragma once

namespace dp::tuning {

// gemm: products of at most this many multiply-adds run in plain loops; from a few thousand up
// OpenBLAS's small-matrix kernels win.
constexpr long kSmallGemm = 512;

// dense_forward: layers with at most this many inputs and outputs compute Z and H in one pass
// over the rows, with a row's outputs in registers; a product call costs more there.
constexpr int kNarrowIn = 16, kNarrowOut = 8;

// Chunks of predict/evaluate/gradients: activations of about this many elements per chunk, so a
// layer's output is still in L2 when the next layer reads it (one thread), or larger products
// that OpenBLAS splits well (more threads); between kMinChunk and kMaxChunk rows.
constexpr long kChunkElements1 = 256L << 10, kChunkElementsN = 4L << 20;
constexpr long kMinChunk = 256, kMaxChunk = 4096;
// Small nets: chunks short enough that every product (rows x fan_in x fan_out) stays within
// this many multiply-adds, where OpenBLAS's small-matrix kernels run without packing.
constexpr long kSmallProduct = 1'000'000;
// Weight matrices of this many elements and more want chunks of at least kWideChunk rows to run
// at GEMM speed (bounded by the parameters' own size).
constexpr long kWideWeights = 1L << 20;
constexpr long kWideChunk = 1024;

// BLAS threads: a pass whose largest product has fewer multiply-adds than this holds OpenBLAS
// at one thread; a second thread gains little below it and waits long on a busy machine.
constexpr double kThreadedProduct = 256.0 * 256 * 256;
// predict: with OpenBLAS held, the user's threads take whole chunks each when the pass has at
// least this many multiply-adds, enough to pay for waking them.
constexpr double kParallelForwardWork = 1e7;
// fit: a batch whose largest product is below this holds OpenBLAS at one thread and shares its
// products among denseprop's own team instead (faster than OpenBLAS's threads there).
constexpr double kTeamTrainedProduct = 1 << 25;
// fit with a team: products of at least this many multiply-adds, and row gathers of at least
// this many elements, are split among the team's threads; smaller ones stay on one thread.
constexpr double kTeamProduct = 1 << 20, kTeamGather = 1 << 14;
// fit with a team: the forward and update products of a weight matrix of this many elements
// and more are split by columns, so that each thread keeps its columns of W in its cache.
constexpr long kSplitByColumns = 1L << 17;
// A helper of a team spins this many times before it sleeps: the products of one step follow
// each other within microseconds, and waking a sleeping thread costs several.
constexpr int kSpinsBeforeSleep = 20000;

// dense_backward: dX = dZ W^T through a transposed copy of W, a plain product, when
// (a) the layer has at most kTransposeOut outputs and kTransposeIn inputs, or (b) W fits in
// kTransposeBytes (L1) and the product is small: OpenBLAS's transposed-B path packs there.
constexpr int kTransposeOut = 16, kTransposeIn = 1024, kTransposeMinRows = 16;
constexpr long kTransposeBytes = 32768;

// Row gather: rows of at most this many elements are copied in a plain loop, not memcpy.
constexpr int kGatherLoopCols = 16;

// Training strategy: batches of one row through nets of at most this many weights train in
// scalar loops (see train_rowwise.cpp); from a few rows or about a hundred weights up, the
// batched loop is faster.
constexpr long kRowwiseParams = 64;

// Training strategy: two-layer nets of at most these widths ([n_in, hidden, n_out]) trained
// with plain SGD one row at a time run in a loop compiled for each width (train_unrolled.cpp).
constexpr int kUnrolledMaxIn = 4, kUnrolledMaxHidden = 8, kUnrolledMaxOut = 4;

// Ctrl-C: the epoch loop checks for a signal after about this many multiply-adds, and asks
// Python at most every kSignalPollMs milliseconds.
constexpr long kCheckEvery = 2'000'000;
constexpr int kSignalPollMs = 20;

// Memory guard: work needing less than this is never checked against the available memory.
constexpr double kCheckedBytes = 256.0 * (1 << 20);

// Bindings: a product of at least this many flops releases the GIL; below it, the release costs
// more than the product.
constexpr double kReleaseGilFlops = 2e5;

}  // namespace dp::tuning
