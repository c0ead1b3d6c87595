// Kokkos interoperability: Kokkos::View <-> halo::Tensor without copying.
//
// A simulation that keeps its fields in Kokkos views hands them to Halo as tensors
// (from_view) or as a data set for the DataLoader (make_dataset), and Halo's outputs can be
// read through views (to_view), in the same process and the same memory. Header-only, so Halo itself never compiles against Kokkos; build with
// HALO_ENABLE_KOKKOS (on when CMake finds Kokkos) and link halo::halo, which carries Kokkos.
//
// Memory spaces: host-accessible spaces map to Device::cpu(); in CUDA builds of Kokkos,
// Kokkos::CudaSpace maps to Device::cuda(<the device Kokkos uses>).
#pragma once
#include <Kokkos_Core.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "halo/data/memory.hpp"
#include "halo/tensor/tensor.hpp"
#include "halo/util/error.hpp"

namespace halo::interop {

/// The Halo device that holds memory of the Kokkos memory space `MemSpace`.
template <class MemSpace>
Device device_of_space() {
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible) {
    return Device::cpu();
  } else {
#if defined(KOKKOS_ENABLE_CUDA)
    if constexpr (std::is_same_v<MemSpace, Kokkos::CudaSpace>) return Device::cuda(Kokkos::Cuda().cuda_device());
#endif
    throw ShapeError(str("Kokkos memory space ", MemSpace::name(),
                         " has no Halo device: use a host space, or CudaSpace in a CUDA build"));
  }
}

namespace detail {

template <class View>
constexpr int view_rank() {
  return int(View::rank);
}

inline std::string view_label(const std::string& label) { return label.empty() ? "(unlabelled)" : "'" + label + "'"; }

}  // namespace detail

/// Wraps the memory of `view` as a tensor of the same extents, strides and element type.
/// No data moves: the tensor holds a copy of the view, so the allocation stays alive while
/// either the view or any tensor over it does. Writes through one are seen through the other.
template <class View>
Tensor from_view(const View& view) {
  using value_type = typename View::value_type;
  static_assert(!std::is_const_v<value_type>,
                "halo::interop::from_view: Halo tensors are writable; pass a View of non-const elements");
  constexpr int rank = detail::view_rank<View>();
  static_assert(rank >= 1, "halo::interop::from_view: rank-0 views are not supported; use a View of rank 1");

  HALO_CHECK_SHAPE(view.data() != nullptr || view.size() == 0, "from_view: Kokkos view ",
                   detail::view_label(view.label()), " is not allocated");
  Shape shape(rank);
  Strides strides(rank);
  for (int d = 0; d < rank; ++d) {
    shape[d] = int64_t(view.extent(d));
    strides[d] = int64_t(view.stride(d));
  }
  const Device dev = device_of_space<typename View::memory_space>();
  const DType dtype = dtype_of<std::remove_cv_t<value_type>>();
  if (view.size() == 0) return Tensor::empty(shape, dtype, dev);  // nothing to share
  View keep_alive = view;
  return Tensor::from_blob(static_cast<void*>(view.data()), shape, dtype, dev, strides,
                           [keep_alive]() mutable { keep_alive = View(); });
}

/// An unmanaged Kokkos::View over the tensor's memory: `DataType` gives element type and
/// rank (float***), `Layout` how the strides must look (LayoutRight: row-major contiguous,
/// LayoutLeft: column-major, LayoutStride: any), `MemSpace` where the memory must live.
/// The view does not own the memory: keep the tensor (or another tensor sharing its
/// storage) alive while the view is used.
template <class DataType, class Layout = Kokkos::LayoutRight, class MemSpace = Kokkos::HostSpace>
Kokkos::View<DataType, Layout, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> to_view(const Tensor& t) {
  using ViewType = Kokkos::View<DataType, Layout, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  using value_type = std::remove_cv_t<typename ViewType::value_type>;
  constexpr int rank = detail::view_rank<ViewType>();
  static_assert(int(ViewType::rank_dynamic) == rank,
                "halo::interop::to_view: use runtime extents only (float**, not float*[3])");
  static_assert(std::is_same_v<Layout, Kokkos::LayoutRight> || std::is_same_v<Layout, Kokkos::LayoutLeft> ||
                    std::is_same_v<Layout, Kokkos::LayoutStride>,
                "halo::interop::to_view: Layout must be LayoutRight, LayoutLeft or LayoutStride");

  HALO_CHECK_SHAPE(t.defined(), "to_view: the tensor is undefined");
  HALO_CHECK_SHAPE(t.dtype() == dtype_of<value_type>(), "to_view: tensor ", t.str(), " holds ", name(t.dtype()),
                   " but the view's element type is ", name(dtype_of<value_type>()), "; convert with tensor.to(DType)");
  HALO_CHECK_SHAPE(t.dim() == rank, "to_view: tensor ", t.str(), " has rank ", t.dim(), " but the view has rank ",
                   rank);
  const Device want = device_of_space<MemSpace>();
  HALO_CHECK_SHAPE(t.device() == want, "to_view: tensor ", t.str(), " lives on ", t.device().str(),
                   " but the view's memory space ", MemSpace::name(), " is on ", want.str(),
                   "; copy it with tensor.to(Device)");

  Layout layout;
  for (int d = 0; d < rank; ++d) layout.dimension[d] = size_t(t.size(d));
  if constexpr (std::is_same_v<Layout, Kokkos::LayoutStride>) {
    for (int d = 0; d < rank; ++d) {
      HALO_CHECK_SHAPE(t.strides()[d] >= 0, "to_view: tensor ", t.str(), " has a negative stride in dimension ", d);
      layout.stride[d] = size_t(t.strides()[d]);
    }
  } else {
    // Kokkos derives strides from the extents; they must agree with the tensor's (dimensions
    // of extent 1 may have any stride).
    Shape order_shape = t.shape();
    const bool left = std::is_same_v<Layout, Kokkos::LayoutLeft>;
    int64_t expect = 1;
    for (int i = 0; i < rank; ++i) {
      const int d = left ? i : rank - 1 - i;
      HALO_CHECK_SHAPE(order_shape[d] == 1 || t.strides()[d] == expect, "to_view: tensor ", t.str(), " with strides ",
                       to_string(t.strides()), " is not ", left ? "column-major (LayoutLeft)" : "row-major (LayoutRight)",
                       "; use LayoutStride, or call tensor.contiguous() first");
      expect *= order_shape[d];
    }
  }
  return ViewType(static_cast<value_type*>(t.raw_data()), layout);
}

/// A data set (data::Dataset, for the DataLoader and the Trainer) over two host views:
/// samples `x` float (N, C, spatial...) and labels `y` float (N, L) or int (N, spatial...).
/// Row-major (LayoutRight) views are shared, not copied, so what the simulation writes into
/// them later is what the next epoch reads; other layouts are copied once (ArrayDataset).
/// The name in error messages is `name`, or the view's label.
template <class XView, class YView>
std::shared_ptr<data::ArrayDataset> make_dataset(const XView& x, const YView& y, std::string name = "") {
  static_assert(detail::view_rank<XView>() >= 2, "halo::interop::make_dataset: x must be (N, C, spatial...)");
  if (name.empty()) name = x.label().empty() ? std::string("kokkos views") : x.label();
  return std::make_shared<data::ArrayDataset>(from_view(x), from_view(y), std::move(name));
}

}  // namespace halo::interop
