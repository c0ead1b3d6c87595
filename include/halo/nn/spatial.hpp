// Spatial parallelism: one sample's spatial axes split over a group of ranks.
//
// Each rank of a SpatialGroup holds one block of every activation: the spatial extent n of
// an axis split over p ranks gives rank c the range split_range(n, p, c). The layers below
// take their input block, fetch from their neighbours the halo cells their window needs
// (zeros beyond the volume's faces: a convolution's padding), run the ordinary kernel on
// that window and return their own block of the output, which equals the same block of the
// unsplit layer's output. Backward sends the halo part of the input gradient back to the
// ranks that own those cells and adds it there, and sums the parameter gradients over the
// group, so that after backward every rank of the group holds the gradients of the unsplit
// model. Data parallelism then runs over the orthogonal groups (dist::SpatialGrid).
//
//   Conv3d k3 pad 1 over 2 ranks along D (64^3 input):  rank 0 owns D [0,32), needs [-1,33):
//   one zero plane below, plane 32 from rank 1.
//
// Any layer that works point by point (activations, scaling) runs on blocks unchanged;
// BatchNorm takes a StatsReducer over the group (dist::SpatialGrid::stats_reducer) so its
// statistics cover the whole volume. SpatialGather turns the split volume into the whole
// one on every rank of the group, for the dense head, which then runs replicated.
//
// The group is an interface so that nn needs no MPI: dist::SpatialGrid implements it.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "halo/nn/batchnorm.hpp"
#include "halo/nn/conv.hpp"
#include "halo/nn/pool.hpp"

namespace halo::nn {

/// Half-open index range [begin, end) along one axis.
struct IndexRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end > begin ? end - begin : 0; }
  bool operator==(const IndexRange& o) const { return begin == o.begin && end == o.end; }
};

/// Part `part` of `n` cells split over `parts` ranks: the first n % parts parts get one more.
IndexRange split_range(int64_t n, int parts, int part);

/// A view of `t` restricted to [begin, begin + len) along tensor dimension `dim` (same
/// strides, t's storage kept alive).
Tensor axis_view(const Tensor& t, int dim, int64_t begin, int64_t len);

/// A group of ranks sharing one sample, arranged as a grid over the spatial axes (D, H, W;
/// for 2D activations H, W use the first two entries). Implemented over MPI by
/// dist::SpatialGrid; tests may implement it otherwise.
class SpatialGroup {
 public:
  virtual ~SpatialGroup() = default;
  /// Ranks along each spatial axis; their product is the group's size.
  virtual std::array<int, 3> parts() const = 0;
  /// This rank's position in the grid.
  virtual std::array<int, 3> coords() const = 0;
  /// Point-to-point exchange with the ranks of this rank's line along `axis` (same
  /// coordinates on the other axes): sends send[q] to the rank at coordinate q and receives
  /// recv[q] from it, for every q with a non-empty buffer (the own entry is ignored). Sizes
  /// agree pairwise by construction. Collective over the line.
  struct Bytes {
    void* data = nullptr;
    size_t size = 0;
  };
  virtual void exchange(int axis, const std::vector<Bytes>& send, const std::vector<Bytes>& recv) = 0;
  /// Sums a host tensor (f32 or f64) over the whole group, in place.
  virtual void allreduce_sum(Tensor& t) = 0;
  /// Whether exchange() may run on another thread while this one computes (MPI with
  /// MPI_THREAD_MULTIPLE); the layers then overlap the halo exchange with their interior.
  virtual bool concurrent_exchange() const { return false; }

  int size() const;
  /// This rank's cells along spatial `axis` of a volume `extent` cells long.
  IndexRange block_range(int axis, int64_t extent) const;
  /// "2x1x1 grid, rank at (1,0,0)".
  std::string describe() const;
};

/// What one layer needs along every spatial axis: the global extent of its input, the
/// window of input cells each rank needs for its output block, and the exchange that
/// fills that window from the owners' blocks. Built once per layer and input shape.
class HaloWindow {
 public:
  HaloWindow() = default;
  /// `global_in`: the input's spatial extents over the whole volume. `halo_axes`: axes along
  /// which this layer's window is built here (the others keep the kernel's own padding); a
  /// split axis must be among them. kernel/stride/padding/dilation as the layer's.
  HaloWindow(const SpatialGroup& group, std::vector<int64_t> global_in, std::vector<int64_t> kernel,
             std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
             std::vector<bool> halo_axes, std::string who);

  int spatial_dims() const { return int(global_in_.size()); }
  /// Global output extent along `axis`.
  int64_t global_out(int axis) const { return global_out_[size_t(axis)]; }
  const std::vector<int64_t>& global_in() const { return global_in_; }
  /// This rank's input block and output block along `axis`.
  IndexRange own_in(int axis) const;
  IndexRange own_out(int axis) const;
  /// The input cells this rank's output block needs (may reach outside [0, n): padding).
  IndexRange want(int axis) const;
  /// Whether any rank's window along `axis` differs from its block (else gather and
  /// scatter_add leave that axis alone).
  bool exchanges(int axis) const;
  /// The input cells that output cells `out` (global) read along `axis` (may reach outside
  /// the volume: padding).
  IndexRange receptive(int axis, IndexRange out) const;
  /// The output cells of this rank's block whose receptive field lies inside its input
  /// block along `axis`, and the global output index at which a convolution of the block
  /// alone (no padding along `axis`) starts. Empty cells where that convolution's grid does
  /// not line up with the global one (a stride that does not divide the block's offset).
  struct Interior {
    IndexRange cells;
    int64_t first = 0;
  };
  Interior interior(int axis) const;
  /// Throws ShapeError naming the layer unless x is this rank's input block.
  void check_block(const Shape& x) const;

  /// The input block extended to this rank's window along the halo axes (zero outside the
  /// volume). Keeps the block's memory format.
  Tensor gather(SpatialGroup& group, const Tensor& block) const;
  /// gather in three steps, for layers that compute while the halo travels: the exchange
  /// buffer with this rank's block and the volume's zero faces in place (no communication);
  /// the halo cells received into it (collective over the lines of the split axes; touches
  /// only cells outside the block); the window from the buffer (itself unless a strided
  /// layer over an uneven split made the buffer wider). CPU tensors.
  Tensor prepare(const Tensor& block) const;
  void fill_halos(SpatialGroup& group, const Tensor& buffer) const;
  Tensor window_of(const Tensor& buffer) const;
  /// Adjoint of gather: the gradient of the window summed into the owners' blocks. Consumes
  /// `grad_window` (a CPU window gradient is used as the work buffer, overwritten).
  Tensor scatter_add(SpatialGroup& group, const Tensor& grad_window) const;
  /// This rank's block cut out of a window-shaped tensor (no communication).
  Tensor own_block(const Tensor& window) const;

  /// The window of the whole volume on every rank (SpatialGather).
  static HaloWindow whole_volume(const SpatialGroup& group, std::vector<int64_t> global_in, std::string who);

 private:
  void set_exchanging();
  // The range of the exchange buffer along every axis, and the view of a piece of it.
  std::vector<IndexRange> buffer_ranges() const;
  Tensor piece(const Tensor& buffer, const std::vector<IndexRange>& buf, int axis, IndexRange along) const;

  std::vector<int64_t> global_in_, global_out_;
  std::vector<int64_t> stride_, pad_, span_;  // per axis; the whole-volume window: 1, 0, 1
  std::vector<bool> halo_axes_, exchanging_;
  // Per axis: every part's input block and wanted window (all ranks compute all of them).
  std::vector<std::vector<IndexRange>> owned_, wanted_, out_;
  std::array<int, 3> coords_{0, 0, 0};
  std::string who_;
};

/// Seconds a spatial layer spent exchanging halos and summing gradients over its group.
class SpatialExchangeClock {
 public:
  virtual ~SpatialExchangeClock() = default;
  /// Seconds spent waiting for exchanges (exposed).
  double exchange_seconds() const { return exchange_s_; }
  /// Seconds of exchange that ran behind computation (hidden).
  double hidden_exchange_seconds() const { return hidden_s_; }
  void reset_exchange_seconds() { exchange_s_ = hidden_s_ = 0; }

 protected:
  double exchange_s_ = 0, hidden_s_ = 0;
};

/// A convolution over a split volume (any kernel, stride, padding, dilation; not transposed).
/// `global_input`: the spatial extents of its input over the whole volume.
class SpatialConvNd : public ConvNd, public SpatialExchangeClock {
 public:
  SpatialConvNd(std::shared_ptr<SpatialGroup> group, std::vector<int64_t> global_input, int64_t in_channels,
                int64_t out_channels, std::vector<int64_t> kernel, const ConvOptions& options);
  std::string type() const override;
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  using Layer::forward;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  double forward_flops(const std::vector<Shape>& inputs) const override;
  const HaloWindow& window() const { return window_; }
  /// Forward passes that overlapped the halo exchange with the block's interior.
  int64_t overlapped_forwards() const { return overlapped_; }

 private:
  Tensor forward_overlapped(const Tensor& x);
  ops::ConvPlan& piece_plan(const Tensor& x);
  std::shared_ptr<SpatialGroup> group_;
  HaloWindow window_;
  std::map<Shape, ops::ConvPlan> piece_plans_;  // the interior's and the boundary slabs'
  int64_t overlapped_ = 0;
};

class SpatialConv3d : public SpatialConvNd {
 public:
  SpatialConv3d(std::shared_ptr<SpatialGroup> group, std::vector<int64_t> global_input, int64_t in, int64_t out,
                int64_t kernel, const ConvOptions& o = {})
      : SpatialConvNd(std::move(group), std::move(global_input), in, out, {kernel, kernel, kernel}, o) {}
};

/// Max or average pooling over a split volume. Padding is allowed only along axes that are
/// not split (max pooling pads with -inf, which a neighbour's zeros would not reproduce).
class SpatialPoolNd : public PoolNd, public SpatialExchangeClock {
 public:
  SpatialPoolNd(std::shared_ptr<SpatialGroup> group, std::vector<int64_t> global_input, ops::PoolConfig cfg);
  std::string type() const override;
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  using Layer::forward;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  double forward_flops(const std::vector<Shape>& inputs) const override;
  const HaloWindow& window() const { return window_; }

 private:
  std::shared_ptr<SpatialGroup> group_;
  HaloWindow window_;
};

class SpatialMaxPool3d : public SpatialPoolNd {
 public:
  SpatialMaxPool3d(std::shared_ptr<SpatialGroup> group, std::vector<int64_t> global_input, int64_t kernel,
                   int64_t stride = 0)
      : SpatialPoolNd(std::move(group), std::move(global_input), pool_config(ops::PoolKind::max, 3, kernel, stride, 0)) {}
};
class SpatialAvgPool3d : public SpatialPoolNd {
 public:
  SpatialAvgPool3d(std::shared_ptr<SpatialGroup> group, std::vector<int64_t> global_input, int64_t kernel,
                   int64_t stride = 0)
      : SpatialPoolNd(std::move(group), std::move(global_input), pool_config(ops::PoolKind::avg, 3, kernel, stride, 0)) {}
};

/// BatchNorm over a split volume: statistics (forward and backward) summed over the group,
/// so they are those of the whole volume; the weight and bias gradients summed likewise.
/// In a spatial x data run each replica normalises over its own batch (as plain BatchNorm
/// per data-parallel rank).
class SpatialBatchNormNd : public BatchNormNd, public SpatialExchangeClock {
 public:
  SpatialBatchNormNd(std::shared_ptr<SpatialGroup> group, int spatial_dims, int64_t channels, double eps = 1e-5,
                     double momentum = 0.1, DType dtype = DType::f32);
  std::string type() const override { return "Spatial" + BatchNormNd::type(); }
  std::vector<Tensor> backward(const Tensor& grad_output) override;

 private:
  std::shared_ptr<SpatialGroup> group_;
};

/// The whole volume from the split one, on every rank of the group (the transition to a
/// replicated dense head). Backward keeps this rank's block of the gradient: the head runs
/// identically on every rank, so each holds the whole gradient already.
class SpatialGather : public Layer, public SpatialExchangeClock {
 public:
  SpatialGather(std::shared_ptr<SpatialGroup> group, std::vector<int64_t> global_input);
  std::string type() const override { return "SpatialGather"; }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  using Layer::forward;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  std::optional<std::vector<ops::OpFamily>> op_families() const override { return std::vector<ops::OpFamily>{}; }

 private:
  std::shared_ptr<SpatialGroup> group_;
  HaloWindow window_;
};

/// This rank's block of a tensor holding the whole volume (N, C, spatial...): what a rank
/// feeds a spatially split model when it has the whole sample (tests, in-memory data).
Tensor spatial_block(const SpatialGroup& group, const Tensor& whole);

class Model;
/// Seconds every spatial layer of `model` waited for halo exchanges and spatial gradient
/// sums since their last reset, and in `hidden` the seconds of exchange that ran behind
/// computation (both reset when `reset`).
double spatial_exchange_seconds(Model& model, bool reset = false, double* hidden = nullptr);

}  // namespace halo::nn
