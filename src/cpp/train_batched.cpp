// The batched trainer: each step runs the layers' forward/backward pairs over a whole batch, as
// matrix products, and takes one optimizer step. With a team, large products are shared among
// its threads and the helpers gather the next batch's rows while they would otherwise wait.
#include <memory>
#include <vector>

#include "strategies.hpp"
#include "workspace.hpp"

namespace dp {

namespace {

// The rows of each batch: the data itself when visiting rows in order, else copies gathered by
// perm. With a team, two buffers of X rows: the helpers gather the next batch's into one while
// the step reads the other.
template <typename T>
class BatchRows {
  public:
    BatchRows(const Model<T>& m, const Epoch<T>& e) : m_(m), e_(e) {
        if (!e.perm) return;
        X_.resize((std::size_t)e.batch * m.n_in());
        Y_.resize((std::size_t)e.batch * m.n_out());
        if (e.w) w_.resize(e.batch);
    }
    // From now on the team's helpers gather the next batch's rows, when that pays. The team must
    // be gone before this object.
    void share_with(TeamThreads* team) {
        team_ = team;
        if (!shares_gather(0)) return;
        X_next_.resize(X_.size());
        team_->set_idle_work(&gather_);
    }

    // Points X, Y and w at the rows of the batch that starts at s.
    void load(std::int64_t s, int rows) {
        if (!e_.perm) {
            X = e_.X + s * m_.n_in();
            Y = e_.Y + s * m_.n_out();
            w = e_.w ? e_.w + s : nullptr;
            return;
        }
        const std::int64_t* idx = e_.perm + s;
        if (shares_gather(s)) {
            // Random rows are read at memory latency; two cores fetch them faster than one.
            if (!next_offered_) gather_.offer(e_.X, m_.n_in(), idx, rows, X_next_.data());
            team_->run([&](int) { gather_.claim_all(); });
            std::swap(X_, X_next_);
            const std::int64_t next = s + e_.batch;
            next_offered_ = shares_gather(next);
            if (next_offered_)
                gather_.offer(e_.X, m_.n_in(), e_.perm + next, (int)std::min<std::int64_t>(e_.batch, e_.n - next),
                              X_next_.data());
        } else {
            gather_rows(e_.X, m_.n_in(), idx, rows, X_.data());
        }
        gather_rows(e_.Y, m_.n_out(), idx, rows, Y_.data());
        for (int r = 0; r < rows && e_.w; ++r) w_[r] = e_.w[idx[r]];
        X = X_.data();
        Y = Y_.data();
        w = e_.w ? w_.data() : nullptr;
    }

    const T *X = nullptr, *Y = nullptr, *w = nullptr;

  private:
    bool shares_gather(std::int64_t s) const {
        return e_.perm && team_ && s < e_.n &&
               double(std::min<std::int64_t>(e_.batch, e_.n - s)) * m_.n_in() >= tuning::kTeamGather;
    }

    const Model<T>& m_;
    const Epoch<T>& e_;
    TeamThreads* team_ = nullptr;
    std::vector<T> X_, X_next_, Y_, w_;
    SharedRowGather<T> gather_;
    bool next_offered_ = false;  // the batch after the current one has been offered to the helpers
};

template <typename T>
class BatchedTrainer {
  public:
    BatchedTrainer(const Model<T>& m, Epoch<T>& e)
        : m_(m), e_(e), ws_(m, e.batch, true), plain_sgd_(is_plain_sgd(e.opt)), k_(states_per_param(e.opt)) {
        // Plain SGD folds its step into the weight-gradient product; the others keep one gradient.
        if (plain_sgd_) return;
        for (int l = 0; l < m.n_layers(); ++l) gW_.emplace_back((std::size_t)m.fan_in(l) * m.fan_out(l));
    }

    void run(EpochPoll<T>& poll) {
        BatchRows<T> batch(m_, e_);
        // The team's helpers spin between the operations of a step: started only when the plan
        // shares products. Declared after the rows its helpers gather into, so it ends first.
        std::unique_ptr<TeamThreads> team;
        if (e_.plan.team > 1) team = std::make_unique<TeamThreads>(e_.plan.team);
        products_ = Products<T>(team.get());
        batch.share_with(team.get());
        for (std::int64_t s = 0; s < e_.n; s += e_.batch) {
            const int rows = (int)std::min<std::int64_t>(e_.batch, e_.n - s);
            batch.load(s, rows);
            const BatchScale bs = batch_scale(e_, rows, [&](int r) { return batch.w[r]; });
            if (!bs.skip) e_.metrics[0] += bs.loss_weight * step(batch.X, batch.Y, batch.w, rows, bs);
            if (poll(rows)) break;
        }
    }

  private:
    // One optimizer step on a batch: forward through the layers, the loss, then backward through
    // the layers, each layer's parameters updated once the error below has been taken from them.
    double step(const T* X, const T* Y, const T* w, int rows, const BatchScale& bs) {
        ws_.forward(X, rows, products_);
        const double loss = ws_.loss(Y, w, rows, T(bs.scale), e_.metrics + 1);
        const std::int64_t t = ++e_.step;
        const T lr = T(e_.opt.lr), decay = T(bs.decay);
        const SgdStep<T> sgd(lr, decay);
        auto weight_side = [&](int l) -> WeightSide<T> {
            if (plain_sgd_) return {m_.W[l], -sgd.lr, sgd.keep};  // W = keep W - lr X^T dZ
            return {gW_[l].data(), T(1), T(0)};
        };
        auto update = [&](int l) {
            if (plain_sgd_) {
                sgd_update<T>(m_.fan_out(l), m_.b[l], ws_.db(), nullptr, lr, T(0), false, T(0));
                return;
            }
            T* const* sw = e_.state.data() + (std::size_t)k_ * (2 * l);  // W[l]'s state arrays, then b[l]'s
            optimizer_update<T>(e_.opt, (std::size_t)m_.fan_in(l) * m_.fan_out(l), m_.W[l], gW_[l].data(), sw, decay, t);
            optimizer_update<T>(e_.opt, m_.fan_out(l), m_.b[l], ws_.db(), sw + k_, T(0), t);
        };
        ws_.backward(X, rows, weight_side, update, products_);
        return loss;
    }

    const Model<T>& m_;
    Epoch<T>& e_;
    Workspace<T> ws_;
    const bool plain_sgd_;
    const int k_;  // state arrays per parameter
    std::vector<std::vector<T>> gW_;
    Products<T> products_;
};

}  // namespace

template <typename T>
void train_batched(const Model<T>& m, Epoch<T>& e, EpochPoll<T>& poll) {
    BatchedTrainer<T>(m, e).run(poll);
}

template void train_batched<float>(const Model<float>&, Epoch<float>&, EpochPoll<float>&);
template void train_batched<double>(const Model<double>&, Epoch<double>&, EpochPoll<double>&);

}  // namespace dp
