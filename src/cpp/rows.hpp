// Tables of rows (activations, losses, optimizers): a row is a struct with a static `name`
// and the row's functions; a table is a RowList of rows. The enum of a table is the position
// of a row in its list, and with_row() calls a generic lambda with the row's type, so each
// kernel is compiled once per row with that row's functions inlined.
#pragma once

#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>

// Row functions are inlined into the kernel compiled for each row (and into each ISA clone of
// a multiversioned kernel, see gemm.hpp), so that its loops vectorise as hand-written ones.
#if defined(__GNUC__)
#define DP_ALWAYS_INLINE inline __attribute__((always_inline))
#define DP_INLINE_LAMBDA __attribute__((always_inline))
#else
#define DP_ALWAYS_INLINE inline
#define DP_INLINE_LAMBDA
#endif

namespace dp {

template <class... Rows>
struct RowList {
    static constexpr int size = sizeof...(Rows);
    static constexpr const char* names[] = {Rows::name...};
};

// The position of Row in List.
template <class Row, class List>
struct IndexOf;
template <class Row, class... Rows>
struct IndexOf<Row, RowList<Rows...>> {
    static constexpr int value = [] {
        constexpr bool same[] = {std::is_same_v<Row, Rows>...};
        for (int i = 0; i < (int)sizeof...(Rows); ++i)
            if (same[i]) return i;
        return -1;
    }();
    static_assert(value >= 0, "the row is not in the list");
};

// f(Row{}) for the row at position i of the list (i must be valid: parse names first).
template <int I = 0, class... Rows, class F>
DP_ALWAYS_INLINE decltype(auto) with_row(RowList<Rows...> list, int i, F&& f) {
    using Row = std::tuple_element_t<I, std::tuple<Rows...>>;
    if constexpr (I + 1 == (int)sizeof...(Rows)) {
        return f(Row{});
    } else {
        if (i == I) return f(Row{});
        return with_row<I + 1>(list, i, static_cast<F&&>(f));
    }
}

// The position of `name` in the list, or -1.
template <class... Rows>
int find_row(RowList<Rows...>, const std::string& name) {
    for (int i = 0; i < (int)sizeof...(Rows); ++i)
        if (name == RowList<Rows...>::names[i]) return i;
    return -1;
}

// "a, b, c": the names of a list, for error messages.
template <class... Rows>
std::string row_names(RowList<Rows...>) {
    std::string out;
    for (const char* n : RowList<Rows...>::names) out += (out.empty() ? "" : ", ") + std::string(n);
    return out;
}

}  // namespace dp
