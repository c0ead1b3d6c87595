// CPU kernels of the optimizer update rules (declared for src/optim/update_rules.cpp).
// Flat loops over dense arrays, OpenMP-parallel; scalars arrive in double and are used
// in T so f32 parameters update in f32 as on a GPU.
#pragma once
#include <cstdint>

#include "halo/optim/update_rules.hpp"

namespace halo::kernels::cpu {

template <class T>
void sgd_update(T* w, const T* g, T* buf, int64_t n, const optim::SgdStep& s);
template <class T>
void adam_update(T* w, const T* g, T* m, T* v, int64_t n, const optim::AdamStep& s);
template <class T>
double lamb_update(T* w, const T* g, T* m, T* v, int64_t n, const optim::LambStep& s);
template <class T>
double lars_update(T* w, const T* g, T* v, int64_t n, const optim::LarsStep& s);
template <class T>
double sum_squares(const T* x, int64_t n);
template <class T>
void scale(T* x, int64_t n, double factor);

}  // namespace halo::kernels::cpu
