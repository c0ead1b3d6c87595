// HaloWindow: which cells of a split volume each rank needs, and the exchanges that move
// them (forward: gather into the window; backward: the adjoint, a scatter-add).
#include <algorithm>
#include <cstring>
#include <functional>
#include <sstream>

#include "halo/nn/spatial.hpp"
#include "halo/ops/elementwise.hpp"
#include "halo/util/error.hpp"

namespace halo::nn {

IndexRange split_range(int64_t n, int parts, int part) {
  HALO_CHECK(parts >= 1 && part >= 0 && part < parts && n >= 0, "split_range: part ", part, " of ", parts,
             " over ", n, " cells");
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = part * base + std::min<int64_t>(part, extra);
  return {begin, begin + base + (part < extra ? 1 : 0)};
}

int SpatialGroup::size() const {
  const auto p = parts();
  return p[0] * p[1] * p[2];
}

IndexRange SpatialGroup::block_range(int axis, int64_t extent) const {
  return split_range(extent, parts().at(size_t(axis)), coords().at(size_t(axis)));
}

std::string SpatialGroup::describe() const {
  const auto p = parts(), c = coords();
  return str(p[0], "x", p[1], "x", p[2], " grid, rank at (", c[0], ",", c[1], ",", c[2], ")");
}

namespace {

IndexRange intersect(IndexRange a, IndexRange b) {
  IndexRange r{std::max(a.begin, b.begin), std::min(a.end, b.end)};
  if (r.end < r.begin) r.end = r.begin;
  return r;
}

std::string range_str(IndexRange r) { return str("[", r.begin, ",", r.end, ")"); }

}  // namespace

Tensor axis_view(const Tensor& t, int dim, int64_t begin, int64_t len) {
  Shape s = t.shape();
  s[size_t(dim)] = len;
  auto keep = t.storage();
  char* p = static_cast<char*>(t.raw_data()) + begin * t.strides()[size_t(dim)] * int64_t(size_of(t.dtype()));
  return Tensor::from_blob(p, s, t.dtype(), t.device(), t.strides(), [keep] {});
}

namespace {

// dst += src on a strided box, through dense copies in f32 (f64 for f64): only thin halo
// slabs come here, so the copies cost little and one path serves every float type.
void add_into(const Tensor& dst, const Tensor& src) {
  const DType acc = dst.dtype() == DType::f64 ? DType::f64 : DType::f32;
  Tensor a = Tensor::empty(dst.shape(), acc);
  a.copy_(dst);
  Tensor b = Tensor::empty(dst.shape(), acc);
  b.copy_(src);
  ops::axpy_(a, 1.0, b);
  Tensor d = dst;
  d.copy_(a);
}

SpatialGroup::Bytes bytes_of(const Tensor& t) { return {t.raw_data(), t.nbytes()}; }

// One exchange along `axis` between this rank (coordinate `self` of `parts`) and the others
// of its line: piece_of(q, true) is the view sent to q, piece_of(q, false) the view q's
// piece lands in (undefined: nothing). Pieces travel as dense contiguous (N, C, spatial...)
// copies whatever the buffers' layouts (two ranks' activations may differ in memory format,
// e.g. where a GPU convolution falls back to another layout for one block's shape); a
// received piece is copied into its view, or added to it with `add`.
void exchange_pieces(SpatialGroup& group, int axis, int self, int parts, bool add,
                     const std::function<Tensor(int q, bool sending)>& piece_of) {
  std::vector<Tensor> sends(static_cast<size_t>(parts)), recvs(static_cast<size_t>(parts));
  std::vector<SpatialGroup::Bytes> sb(static_cast<size_t>(parts)), rb(static_cast<size_t>(parts));
  auto dense_like = [](const Tensor& v) { return Tensor::empty(v.shape(), v.dtype(), Device::cpu(), MemoryFormat::contiguous); };
  for (int q = 0; q < parts; ++q) {
    if (q == self) continue;
    if (const Tensor v = piece_of(q, true); v.defined()) {
      sends[size_t(q)] = dense_like(v);
      sends[size_t(q)].copy_(v);
      sb[size_t(q)] = bytes_of(sends[size_t(q)]);
    }
    if (const Tensor v = piece_of(q, false); v.defined()) {
      recvs[size_t(q)] = dense_like(v);
      rb[size_t(q)] = bytes_of(recvs[size_t(q)]);
    }
  }
  group.exchange(axis, sb, rb);
  for (int q = 0; q < parts; ++q) {
    if (!recvs[size_t(q)].defined()) continue;
    Tensor target = piece_of(q, false);
    if (add)
      add_into(target, recvs[size_t(q)]);
    else
      target.copy_(recvs[size_t(q)]);
  }
}

}  // namespace

HaloWindow::HaloWindow(const SpatialGroup& group, std::vector<int64_t> global_in, std::vector<int64_t> kernel,
                       std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                       std::vector<bool> halo_axes, std::string who)
    : global_in_(std::move(global_in)), halo_axes_(std::move(halo_axes)), coords_(group.coords()),
      who_(std::move(who)) {
  const size_t nd = global_in_.size();
  HALO_CHECK_T(ConfigError, nd >= 1 && nd <= 3 && kernel.size() == nd && stride.size() == nd && padding.size() == nd &&
                                dilation.size() == nd && halo_axes_.size() == nd,
               who_, ": spatial window needs one kernel/stride/padding/dilation per spatial axis");
  const auto parts = group.parts();
  for (size_t a = nd; a < 3; ++a)
    HALO_CHECK_T(ConfigError, parts[a] == 1, who_, ": ", nd, "D activations cannot be split along axis ", a, " (",
                 group.describe(), ")");
  global_out_.resize(nd);
  owned_.resize(nd);
  wanted_.resize(nd);
  out_.resize(nd);
  stride_ = stride;
  pad_ = padding;
  span_.resize(nd);
  for (size_t a = 0; a < nd; ++a) {
    const int64_t n = global_in_[a], s = stride[a], p = padding[a];
    const int64_t span = span_[a] = dilation[a] * (kernel[a] - 1) + 1;
    HALO_CHECK_SHAPE(n + 2 * p >= span, who_, ": the volume's extent ", n, " along axis ", a,
                     " is smaller than the kernel's span ", span);
    global_out_[a] = (n + 2 * p - span) / s + 1;
    const int P = parts[a];
    HALO_CHECK_T(ConfigError, P == 1 || halo_axes_[a], who_, ": axis ", a, " is split over ", P,
                 " ranks but gets no halo");
    for (int q = 0; q < P; ++q) {
      const IndexRange own = split_range(n, P, q), out = split_range(global_out_[a], P, q);
      HALO_CHECK_T(ConfigError, own.size() > 0 && out.size() > 0, who_, ": splitting axis ", a, " (input extent ", n,
                   ", output extent ", global_out_[a], ") over ", P,
                   " ranks leaves a rank without cells; use fewer ranks along this axis");
      owned_[a].push_back(own);
      out_[a].push_back(out);
      wanted_[a].push_back(halo_axes_[a] ? receptive(int(a), out) : IndexRange{0, n});
    }
  }
  set_exchanging();
}

IndexRange HaloWindow::own_in(int axis) const { return owned_.at(size_t(axis)).at(size_t(coords_[size_t(axis)])); }
IndexRange HaloWindow::own_out(int axis) const { return out_.at(size_t(axis)).at(size_t(coords_[size_t(axis)])); }
IndexRange HaloWindow::want(int axis) const { return wanted_.at(size_t(axis)).at(size_t(coords_[size_t(axis)])); }

void HaloWindow::set_exchanging() {
  // Along an axis where every rank's window is its own block (a pooling whose windows tile
  // the blocks), the block is the window: no copy, no message.
  exchanging_.assign(global_in_.size(), false);
  for (size_t a = 0; a < global_in_.size(); ++a)
    for (size_t q = 0; halo_axes_[a] && q < owned_[a].size(); ++q)
      if (!(wanted_[a][q] == owned_[a][q])) exchanging_[a] = true;
}

bool HaloWindow::exchanges(int axis) const { return exchanging_.at(size_t(axis)); }

IndexRange HaloWindow::receptive(int axis, IndexRange out) const {
  const size_t a = size_t(axis);
  return {out.begin * stride_[a] - pad_[a], (out.end - 1) * stride_[a] - pad_[a] + span_[a]};
}

HaloWindow::Interior HaloWindow::interior(int axis) const {
  const size_t a = size_t(axis);
  const IndexRange own = own_in(axis);
  if ((own.begin + pad_[a]) % stride_[a] != 0) return {};
  Interior r;
  r.first = (own.begin + pad_[a]) / stride_[a];
  const int64_t end = own.size() >= span_[a] ? (own.end + pad_[a] - span_[a]) / stride_[a] + 1 : r.first;
  r.cells = intersect(own_out(axis), {r.first, end});
  return r;
}

void HaloWindow::check_block(const Shape& x) const {
  const int nd = spatial_dims();
  HALO_CHECK_SHAPE(int(x.size()) == nd + 2, who_, ": input ", to_string(x), " should be (N, C, ", nd, " spatial dims)");
  for (int a = 0; a < nd; ++a)
    HALO_CHECK_SHAPE(x[size_t(2 + a)] == own_in(a).size(), who_, ": input block ", to_string(x),
                     " is not this rank's block along axis ", a, ": the volume's extent ", global_in_[size_t(a)],
                     " split over ", owned_[size_t(a)].size(), " ranks gives rank ", coords_[size_t(a)], " the range ",
                     range_str(own_in(a)));
}

HaloWindow HaloWindow::whole_volume(const SpatialGroup& group, std::vector<int64_t> global_in, std::string who) {
  const size_t nd = global_in.size();
  std::vector<bool> halo(nd);
  const auto parts = group.parts();
  for (size_t a = 0; a < nd; ++a) halo[a] = parts[a] > 1;
  HaloWindow r;
  r.global_in_ = global_in;
  r.global_out_ = global_in;
  r.stride_.assign(nd, 1);
  r.pad_.assign(nd, 0);
  r.span_.assign(nd, 1);
  r.halo_axes_ = halo;
  r.coords_ = group.coords();
  r.who_ = std::move(who);
  r.owned_.resize(nd);
  r.wanted_.resize(nd);
  r.out_.resize(nd);
  for (size_t a = 0; a < nd; ++a)
    for (int q = 0; q < parts[a]; ++q) {
      const IndexRange own = split_range(global_in[a], parts[a], q);
      HALO_CHECK_T(ConfigError, own.size() > 0, r.who_, ": splitting axis ", a, " (extent ", global_in[a], ") over ",
                   parts[a], " ranks leaves a rank without cells");
      r.owned_[a].push_back(own);
      r.wanted_[a].push_back({0, global_in[a]});
      r.out_[a].push_back({0, global_in[a]});
    }
  r.set_exchanging();
  return r;
}

// Both directions work in one buffer per call. Along an exchanging axis it spans the hull
// of this rank's block and its window (they differ only for strided layers over uneven
// splits, where a rank may own cells its own window skips but a neighbour's needs).
// Exchanges run axis after axis; the piece sent along axis a spans, along every other axis
// b, the window for b < a (those halos arrived already, so corners travel on) and the
// block for b > a. The ranks of one line along a share every other coordinate, hence
// those ranges, so both sides agree on every piece's shape.

std::vector<IndexRange> HaloWindow::buffer_ranges() const {
  std::vector<IndexRange> r(static_cast<size_t>(spatial_dims()));
  for (int a = 0; a < spatial_dims(); ++a) {
    const IndexRange o = own_in(a), w = want(a);
    r[size_t(a)] = exchanges(a) ? IndexRange{std::min(o.begin, w.begin), std::max(o.end, w.end)} : o;
  }
  return r;
}

Tensor HaloWindow::piece(const Tensor& buffer, const std::vector<IndexRange>& buf, int axis, IndexRange along) const {
  Tensor t = axis_view(buffer, 2 + axis, along.begin - buf[size_t(axis)].begin, along.size());
  for (int b = 0; b < spatial_dims(); ++b) {
    if (b == axis || !exchanges(b)) continue;
    const IndexRange r = b < axis ? want(b) : own_in(b);
    t = axis_view(t, 2 + b, r.begin - buf[size_t(b)].begin, r.size());
  }
  return t;
}

Tensor HaloWindow::gather(SpatialGroup& group, const Tensor& block_in) const {
  check_block(block_in.shape());
  bool any = false;
  for (int a = 0; a < spatial_dims(); ++a) any = any || exchanges(a);
  if (!any) return block_in;  // every window is the block
  const Device dev = block_in.device();
  Tensor buffer = prepare(dev.is_cpu() ? block_in : block_in.to(Device::cpu()));  // device tensors stage through the host
  fill_halos(group, buffer);
  const Tensor out = window_of(buffer);
  return dev.is_cpu() ? out : out.to(dev);
}

Tensor HaloWindow::prepare(const Tensor& t) const {
  check_block(t.shape());
  const std::vector<IndexRange> buf = buffer_ranges();
  Shape bs = t.shape();
  for (int a = 0; a < spatial_dims(); ++a) bs[size_t(2 + a)] = buf[size_t(a)].size();
  Tensor out = Tensor::empty(bs, t.dtype(), Device::cpu(), t.memory_format());
  // Cells outside the volume are the layer's zero padding.
  for (int a = 0; a < spatial_dims(); ++a) {
    const int64_t n = global_in_[size_t(a)];
    const IndexRange r = buf[size_t(a)];
    for (const IndexRange face : {IndexRange{r.begin, std::min<int64_t>(0, r.end)}, IndexRange{std::max(n, r.begin), r.end}})
      if (face.size() > 0) {
        Tensor z = axis_view(out, 2 + a, face.begin - r.begin, face.size());
        z.copy_(Tensor::zeros(z.shape(), t.dtype()));
      }
  }
  Tensor mine = out;
  for (int a = 0; a < spatial_dims(); ++a)
    mine = axis_view(mine, 2 + a, own_in(a).begin - buf[size_t(a)].begin, own_in(a).size());
  mine.copy_(t);
  return out;
}

void HaloWindow::fill_halos(SpatialGroup& group, const Tensor& out) const {
  const std::vector<IndexRange> buf = buffer_ranges();
  for (int a = 0; a < spatial_dims(); ++a) {
    if (!exchanges(a)) continue;
    const IndexRange own = own_in(a), w = want(a);
    exchange_pieces(group, a, coords_[size_t(a)], int(owned_[size_t(a)].size()), /*add=*/false,
                    [&](int q, bool sending) {
                      // Sending: my cells in q's window; receiving: q's cells in my window.
                      const IndexRange r = sending ? intersect(own, wanted_[size_t(a)][size_t(q)])
                                                   : intersect(owned_[size_t(a)][size_t(q)], w);
                      return r.size() > 0 ? piece(out, buf, a, r) : Tensor();
                    });
  }
}

Tensor HaloWindow::window_of(const Tensor& buffer) const {
  // The window itself: the buffer unless some axis's hull is wider than the window.
  const std::vector<IndexRange> buf = buffer_ranges();
  bool exact = true;
  for (int a = 0; a < spatial_dims(); ++a) exact = exact && (!exchanges(a) || buf[size_t(a)] == want(a));
  if (exact) return buffer;
  Tensor v = buffer;
  for (int a = 0; a < spatial_dims(); ++a)
    if (exchanges(a)) v = axis_view(v, 2 + a, want(a).begin - buf[size_t(a)].begin, want(a).size());
  Tensor out = Tensor::empty(v.shape(), v.dtype(), Device::cpu(), buffer.memory_format());
  out.copy_(v);
  return out;
}

Tensor HaloWindow::scatter_add(SpatialGroup& group, const Tensor& grad_window) const {
  bool any = false;
  for (int a = 0; a < spatial_dims(); ++a) {
    HALO_CHECK_SHAPE(grad_window.dim() == spatial_dims() + 2 && grad_window.size(2 + a) == (exchanges(a) ? want(a) : own_in(a)).size(),
                     who_, ": window gradient ", grad_window.str(), " does not match the window along axis ", a,
                     " (", range_str(exchanges(a) ? want(a) : own_in(a)), ")");
    any = any || exchanges(a);
  }
  if (!any) return grad_window;
  const Device dev = grad_window.device();
  const Tensor g = dev.is_cpu() ? grad_window : grad_window.to(Device::cpu());
  const std::vector<IndexRange> buf = buffer_ranges();
  // The buffer: the window gradient itself (consumed: its halo cells are sent away and
  // the neighbours' contributions added to the block's cells in place) unless the hull is
  // wider than the window somewhere.
  bool exact = true;
  for (int a = 0; a < spatial_dims(); ++a) exact = exact && (!exchanges(a) || buf[size_t(a)] == want(a));
  Tensor work = g;
  if (!exact) {
    Shape bs = g.shape();
    for (int a = 0; a < spatial_dims(); ++a) bs[size_t(2 + a)] = buf[size_t(a)].size();
    work = Tensor::zeros(bs, g.dtype(), Device::cpu(), g.memory_format());
    Tensor v = work;
    for (int a = 0; a < spatial_dims(); ++a)
      if (exchanges(a)) v = axis_view(v, 2 + a, want(a).begin - buf[size_t(a)].begin, want(a).size());
    v.copy_(g);
  }
  for (int a = spatial_dims() - 1; a >= 0; --a) {
    if (!exchanges(a)) continue;
    const IndexRange own = own_in(a), w = want(a);
    exchange_pieces(group, a, coords_[size_t(a)], int(owned_[size_t(a)].size()), /*add=*/true,
                    [&](int q, bool sending) {
                      // Sending: q's cells in my window; receiving: my cells in q's window.
                      const IndexRange r = sending ? intersect(w, owned_[size_t(a)][size_t(q)])
                                                   : intersect(wanted_[size_t(a)][size_t(q)], own);
                      return r.size() > 0 ? piece(work, buf, a, r) : Tensor();
                    });
  }
  Tensor v = work;
  for (int a = 0; a < spatial_dims(); ++a)
    v = axis_view(v, 2 + a, own_in(a).begin - buf[size_t(a)].begin, own_in(a).size());
  Tensor res = Tensor::empty(v.shape(), v.dtype(), Device::cpu(), g.memory_format());
  res.copy_(v);
  return dev.is_cpu() ? res : res.to(dev);
}

Tensor HaloWindow::own_block(const Tensor& whole) const {
  Tensor t = whole;
  for (int a = 0; a < spatial_dims(); ++a) {
    if (!halo_axes_[size_t(a)]) continue;
    const IndexRange own = own_in(a), w = want(a);
    t = axis_view(t, 2 + a, own.begin - w.begin, own.size());
  }
  Tensor r = Tensor::empty(t.shape(), t.dtype(), t.device(), whole.memory_format());
  r.copy_(t);
  return r;
}

}  // namespace halo::nn
