// The loops that train one epoch, each in its own file; train_epoch (passes.cpp) picks one.
#pragma once

#include <algorithm>
#include <cstdint>

#include "passes.hpp"
#include "tuning.hpp"

// Scalar loops on purpose, in the row-wise and unrolled loops: at their widths a vectorised
// loop's set-up costs more than it saves.
#if defined(__GNUC__) && !defined(__clang__)
#define DP_SCALAR_LOOPS __attribute__((optimize("no-tree-vectorize")))
#else
#define DP_SCALAR_LOOPS
#endif

namespace dp {

// Calls the epoch's should_stop after every few milliseconds of work.
template <typename T>
class EpochPoll {
  public:
    EpochPoll(const Model<T>& m, Epoch<T>& e) : e_(e) {
        for (int l = 0; l < m.n_layers(); ++l) per_row_ += 3L * m.fan_in(l) * m.fan_out(l) + 8L * m.fan_out(l);
    }
    long work_per_row() const { return per_row_; }
    // After `rows` rows of work: true when the epoch must stop now.
    bool operator()(std::int64_t rows) {
        work_ += per_row_ * rows;
        if (!e_.should_stop || work_ < tuning::kCheckEvery) return false;
        work_ = 0;
        if (!e_.should_stop()) return false;
        e_.stopped = true;
        return true;
    }

  private:
    Epoch<T>& e_;
    long per_row_ = 0, work_ = 0;  // multiply-adds
};

// How one batch counts: the mean's denominator (its rows, or the sum of its sample weights),
// the loss gradient's scale, the weight decay and the weight of the batch's loss in the metrics.
struct BatchScale {
    double scale, decay, loss_weight;
    bool skip;  // a batch whose sample weights sum to zero takes no step
};

template <typename T, class Weight>
BatchScale batch_scale(const Epoch<T>& e, int rows, Weight weight_of_row) {
    double denominator = rows;
    if (e.objective.by_weight_sum && e.w) {
        denominator = 0.0;
        for (int r = 0; r < rows; ++r) denominator += double(weight_of_row(r));
    }
    if (!(denominator > 0.0)) return {0.0, 0.0, 0.0, true};
    const double decay = e.objective.decay_by_batch ? e.opt.weight_decay / denominator : e.opt.weight_decay;
    return {e.objective.output_scale / denominator, decay, rows / denominator * e.objective.output_scale, false};
}

template <typename T>
void train_batched(const Model<T>& m, Epoch<T>& e, EpochPoll<T>& poll);

bool rowwise_applies(const std::vector<int>& sizes, int batch);
template <typename T>
void train_rowwise(const Model<T>& m, Epoch<T>& e, EpochPoll<T>& poll);

template <typename T>
bool unrolled_applies(const Model<T>& m, const Epoch<T>& e);
template <typename T>
void train_unrolled(const Model<T>& m, Epoch<T>& e, EpochPoll<T>& poll);

}  // namespace dp
