// cuDNN convolution plan (conv.hpp), on cuDNN's legacy convolution API, which covers 2-D
// and 3-D, groups, dilation, f32/TF32/bf16 and both layouts in one path.
#include <cudnn.h>

#include <map>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "cuda/check.hpp"
#include "cuda/conv.hpp"
#include "halo/cuda/runtime.hpp"

namespace halo::cuda {

namespace {

cudnnHandle_t handle_for(int device) {
  // Per device and thread: a handle must not be used from two threads with different streams.
  thread_local std::unordered_map<int, cudnnHandle_t> handles;
  auto it = handles.find(device);
  if (it != handles.end()) return it->second;
  cudnnHandle_t h = nullptr;
  HALO_CUDNN_CHECK(cudnnCreate(&h));
  handles[device] = h;
  return h;
}

enum Direction { kForward = 0, kBackwardData = 1, kBackwardFilter = 2 };
const char* const kDirName[] = {"fwd", "bwd_data", "bwd_filter"};

struct Choice {
  int algo = -1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
  float ms = -1.f;
};

// Process-wide: the algorithm for a shape is searched once, whatever plan asks first.
std::mutex g_cache_mu;
std::map<std::string, Choice>& algo_cache() {
  static auto* m = new std::map<std::string, Choice>;
  return *m;
}

const char* fwd_algo_name(int a) {
  static const char* n[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
                            "WINOGRAD", "WINOGRAD_NONFUSED"};
  return a >= 0 && a < 8 ? n[a] : "?";
}
const char* bwd_data_algo_name(int a) {
  static const char* n[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  return a >= 0 && a < 6 ? n[a] : "?";
}
const char* bwd_filter_algo_name(int a) {
  static const char* n[] = {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};
  return a >= 0 && a < 7 ? n[a] : "?";
}

bool is_tensor_op(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// The first successful result that fits the workspace limit and the precision asked for.
// cuDNN returns results fastest first.
template <class Perf>
Choice pick(const Perf* perf, int count, size_t limit, bool strict_f32, const std::string& what) {
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > limit) continue;
    if (strict_f32 && is_tensor_op(p.mathType)) continue;
    return Choice{int(p.algo), p.mathType, p.memory, p.time};
  }
  throw Error(str("cuDNN has no usable algorithm for ", what, " within a workspace of ", limit,
                  " bytes: raise ConvParams::workspace_limit, or try the other memory format"));
}

// A device buffer from the caching allocator, returned to it (stream-ordered) at scope exit.
struct ScratchBuffer {
  Allocator* alloc = nullptr;
  void* ptr = nullptr;
  size_t bytes = 0;
  ScratchBuffer(int device, size_t n) : bytes(n) {
    if (n == 0) return;
    alloc = &allocator_for(Device::cuda(device));
    ptr = alloc->allocate(n);
  }
  ~ScratchBuffer() {
    if (ptr) alloc->deallocate(ptr, bytes);
  }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
};

}  // namespace

struct ConvPlan::Impl {
  ConvParams p;
  int device = 0;
  Shape out_shape;
  Strides x_strides, w_strides, y_strides;
  cudnnTensorDescriptor_t x_desc = nullptr, y_desc = nullptr;
  cudnnFilterDescriptor_t w_desc = nullptr;
  cudnnConvolutionDescriptor_t conv_desc = nullptr;
  std::string key;  // shape, layout and precision: the algorithm cache's key
  mutable std::mutex mu;
  mutable Choice choice[3];
  mutable bool chosen[3] = {false, false, false};

  bool strict_f32() const { return p.dtype == DType::f32 && !p.allow_tf32; }
  std::string describe() const {
    return str("conv", p.input.size() - 2, "d input ", to_string(p.input), " weight ", to_string(p.weight), " (",
               name(p.dtype), p.format == MemoryFormat::channels_last ? ", channels_last" : ", contiguous", ")");
  }

  void check_tensor(const Tensor& t, const Shape& shape, const Strides& strides, const char* what,
                    const char* who) const {
    HALO_CHECK_SHAPE(t.defined() && t.shape() == shape && t.dtype() == p.dtype, who, " of ", describe(), ": ",
                     what, " is ", t.defined() ? t.str() : std::string("undefined"), ", expected ", name(p.dtype),
                     to_string(shape));
    HALO_CHECK_SHAPE(t.device() == Device::cuda(device), who, " of ", describe(), ": ", what, " ", t.str(),
                     " must be on cuda:", device);
    HALO_CHECK_SHAPE(t.strides() == strides, who, " of ", describe(), ": ", what, " ", t.str(),
                     " is not in the plan's memory format (convert with to_memory_format)");
  }

  const Choice& choose(Direction dir, const void* a, const void* b) const {
    std::lock_guard<std::mutex> lock(mu);
    if (chosen[dir]) return choice[dir];
    const std::string k = key + " " + kDirName[dir];
    {
      std::lock_guard<std::mutex> cl(g_cache_mu);
      auto it = algo_cache().find(k);
      if (it != algo_cache().end()) {
        choice[dir] = it->second;
        chosen[dir] = true;
        return choice[dir];
      }
    }
    DeviceGuard g(device);
    cudnnHandle_t h = handle_for(device);
    HALO_CUDNN_CHECK(cudnnSetStream(h, current_stream(device)));
    HALO_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc, strict_f32() ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    const bool strict = strict_f32();
    const std::string what = str(kDirName[dir], " of ", describe());
    constexpr int kMax = 16;
    int n = 0;
    Choice c;
    if (p.measure) {
      // Measured on scratch output and workspace from the allocator, so the caller's
      // output (which backward_filter may accumulate into) is left alone.
      size_t free_b = 0, total_b = 0;
      HALO_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
      const size_t ws_bytes = std::min(p.workspace_limit, free_b / 2);
      const size_t es = size_of(p.dtype);
      const size_t out_bytes = size_t(numel(dir == kForward ? out_shape : dir == kBackwardData ? p.input : p.weight)) * es;
      ScratchBuffer out(device, out_bytes), ws(device, ws_bytes);
      if (dir == kForward) {
        cudnnConvolutionFwdAlgoPerf_t perf[kMax];
        HALO_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, x_desc, a, w_desc, b, conv_desc, y_desc, out.ptr,
                                                                kMax, &n, perf, ws.ptr, ws_bytes));
        c = pick(perf, n, ws_bytes, strict, what);
      } else if (dir == kBackwardData) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
        HALO_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, w_desc, b, y_desc, a, conv_desc, x_desc,
                                                                     out.ptr, kMax, &n, perf, ws.ptr, ws_bytes));
        c = pick(perf, n, ws_bytes, strict, what);
      } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
        HALO_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, x_desc, a, y_desc, b, conv_desc, w_desc,
                                                                       out.ptr, kMax, &n, perf, ws.ptr, ws_bytes));
        c = pick(perf, n, ws_bytes, strict, what);
      }
    } else {
      if (dir == kForward) {
        cudnnConvolutionFwdAlgoPerf_t perf[kMax];
        HALO_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, x_desc, w_desc, conv_desc, y_desc, kMax, &n, perf));
        c = pick(perf, n, p.workspace_limit, strict, what);
      } else if (dir == kBackwardData) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
        HALO_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, w_desc, y_desc, conv_desc, x_desc, kMax, &n, perf));
        c = pick(perf, n, p.workspace_limit, strict, what);
      } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
        HALO_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, x_desc, y_desc, conv_desc, w_desc, kMax, &n, perf));
        c = pick(perf, n, p.workspace_limit, strict, what);
      }
    }
    if (strict) c.math = CUDNN_FMA_MATH;
    {
      std::lock_guard<std::mutex> cl(g_cache_mu);
      algo_cache()[k] = c;
    }
    choice[dir] = c;
    chosen[dir] = true;
    return choice[dir];
  }

  // Sets the stream and math type for one call; returns the handle.
  cudnnHandle_t prepare(const Choice& c) const {
    cudnnHandle_t h = handle_for(device);
    HALO_CUDNN_CHECK(cudnnSetStream(h, current_stream(device)));
    HALO_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc, c.math));
    return h;
  }
};

ConvPlan::ConvPlan(const ConvParams& params, int device) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.p = params;
  m.device = device;
  ConvParams& p = m.p;
  const int nd = int(p.input.size()) - 2;
  HALO_CHECK_SHAPE((nd == 2 || nd == 3) && p.weight.size() == p.input.size(), "cuDNN convolution: input ",
                   to_string(p.input), " and weight ", to_string(p.weight),
                   " must both be (N, C, H, W) / (K, C/groups, kH, kW) or the 3-D equivalents");
  HALO_CHECK_SHAPE(p.dtype == DType::f32 || p.dtype == DType::bf16, "cuDNN convolution: dtype ", name(p.dtype),
                   " not supported (f32 or bf16)");
  if (p.stride.empty()) p.stride.assign(size_t(nd), 1);
  if (p.padding.empty()) p.padding.assign(size_t(nd), 0);
  if (p.dilation.empty()) p.dilation.assign(size_t(nd), 1);
  HALO_CHECK_SHAPE(int(p.stride.size()) == nd && int(p.padding.size()) == nd && int(p.dilation.size()) == nd,
                   "cuDNN convolution of ", to_string(p.input), ": stride, padding and dilation need ", nd,
                   " entries each");
  HALO_CHECK_SHAPE(p.groups >= 1 && p.input[1] % p.groups == 0 && p.weight[0] % p.groups == 0 &&
                       p.weight[1] * p.groups == p.input[1],
                   "cuDNN convolution: input ", to_string(p.input), " with weight ", to_string(p.weight), " and ",
                   p.groups, " groups: channels do not match (weight dim 1 must be C / groups)");
  m.out_shape = {p.input[0], p.weight[0]};
  for (int i = 0; i < nd; ++i) {
    const int64_t eff = int64_t(p.dilation[size_t(i)]) * (p.weight[size_t(i + 2)] - 1) + 1;
    const int64_t o = (p.input[size_t(i + 2)] + 2 * p.padding[size_t(i)] - eff) / p.stride[size_t(i)] + 1;
    HALO_CHECK_SHAPE(p.stride[size_t(i)] >= 1 && p.dilation[size_t(i)] >= 1 && o >= 1, "cuDNN convolution: input ",
                     to_string(p.input), " is smaller than the dilated kernel ", to_string(p.weight), " after padding");
    m.out_shape.push_back(o);
  }
  const bool cl = p.format == MemoryFormat::channels_last;
  auto strides_of = [cl](const Shape& s) { return cl ? channels_last_strides(s) : contiguous_strides(s); };
  m.x_strides = strides_of(p.input);
  m.w_strides = strides_of(p.weight);
  m.y_strides = strides_of(m.out_shape);

  const cudnnDataType_t dt = p.dtype == DType::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  auto to_int = [](const std::vector<int64_t>& v) { return std::vector<int>(v.begin(), v.end()); };
  HALO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&m.x_desc));
  HALO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&m.y_desc));
  HALO_CUDNN_CHECK(cudnnCreateFilterDescriptor(&m.w_desc));
  HALO_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&m.conv_desc));
  HALO_CUDNN_CHECK(cudnnSetTensorNdDescriptor(m.x_desc, dt, nd + 2, to_int(p.input).data(), to_int(m.x_strides).data()));
  HALO_CUDNN_CHECK(cudnnSetTensorNdDescriptor(m.y_desc, dt, nd + 2, to_int(m.out_shape).data(), to_int(m.y_strides).data()));
  HALO_CUDNN_CHECK(cudnnSetFilterNdDescriptor(m.w_desc, dt, cl ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, nd + 2,
                                              to_int(p.weight).data()));
  HALO_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(m.conv_desc, nd, p.padding.data(), p.stride.data(),
                                                   p.dilation.data(), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  HALO_CUDNN_CHECK(cudnnSetConvolutionGroupCount(m.conv_desc, p.groups));
  std::vector<int> check(size_t(nd + 2));
  HALO_CUDNN_CHECK(cudnnGetConvolutionNdForwardOutputDim(m.conv_desc, m.x_desc, m.w_desc, nd + 2, check.data()));
  HALO_CHECK(std::vector<int64_t>(check.begin(), check.end()) == m.out_shape, "cuDNN convolution of ",
             to_string(p.input), ": cuDNN's output shape differs from Halo's ", to_string(m.out_shape));
  std::ostringstream k;
  k << "cuda:" << device << " in" << to_string(p.input) << " w" << to_string(p.weight) << " s" << to_string(Shape(p.stride.begin(), p.stride.end()))
    << " p" << to_string(Shape(p.padding.begin(), p.padding.end())) << " d" << to_string(Shape(p.dilation.begin(), p.dilation.end())) << " g" << p.groups << " "
    << name(p.dtype) << (cl ? " cl" : " nc") << (p.allow_tf32 ? " tf32" : "") << (p.measure ? " find" : " heur")
    << " ws" << p.workspace_limit;
  m.key = k.str();
}

ConvPlan::~ConvPlan() {
  if (!impl_) return;
  cudnnDestroyTensorDescriptor(impl_->x_desc);
  cudnnDestroyTensorDescriptor(impl_->y_desc);
  cudnnDestroyFilterDescriptor(impl_->w_desc);
  cudnnDestroyConvolutionDescriptor(impl_->conv_desc);
}

const ConvParams& ConvPlan::params() const { return impl_->p; }
const Shape& ConvPlan::output_shape() const { return impl_->out_shape; }

double ConvPlan::flops() const {
  const ConvParams& p = impl_->p;
  double per_output = 2.0 * double(p.weight[1]);
  for (size_t i = 2; i < p.weight.size(); ++i) per_output *= double(p.weight[i]);
  return per_output * double(numel(impl_->out_shape));
}

void ConvPlan::forward(const Tensor& x, const Tensor& w, Tensor& y, float alpha, float beta) const {
  const Impl& m = *impl_;
  m.check_tensor(x, m.p.input, m.x_strides, "input", "forward");
  m.check_tensor(w, m.p.weight, m.w_strides, "weight", "forward");
  m.check_tensor(y, m.out_shape, m.y_strides, "output", "forward");
  DeviceGuard g(m.device);
  const Choice& c = m.choose(kForward, x.raw_data(), w.raw_data());
  ScratchBuffer ws(m.device, c.workspace);
  HALO_CUDNN_CHECK(cudnnConvolutionForward(m.prepare(c), &alpha, m.x_desc, x.raw_data(), m.w_desc, w.raw_data(),
                                           m.conv_desc, cudnnConvolutionFwdAlgo_t(c.algo), ws.ptr, c.workspace,
                                           &beta, m.y_desc, y.raw_data()));
}

void ConvPlan::backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, float beta) const {
  const Impl& m = *impl_;
  m.check_tensor(dy, m.out_shape, m.y_strides, "output gradient", "backward_data");
  m.check_tensor(w, m.p.weight, m.w_strides, "weight", "backward_data");
  m.check_tensor(dx, m.p.input, m.x_strides, "input gradient", "backward_data");
  DeviceGuard g(m.device);
  const Choice& c = m.choose(kBackwardData, dy.raw_data(), w.raw_data());
  ScratchBuffer ws(m.device, c.workspace);
  const float alpha = 1.f;
  HALO_CUDNN_CHECK(cudnnConvolutionBackwardData(m.prepare(c), &alpha, m.w_desc, w.raw_data(), m.y_desc,
                                                dy.raw_data(), m.conv_desc, cudnnConvolutionBwdDataAlgo_t(c.algo),
                                                ws.ptr, c.workspace, &beta, m.x_desc, dx.raw_data()));
}

void ConvPlan::backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, float beta) const {
  const Impl& m = *impl_;
  m.check_tensor(x, m.p.input, m.x_strides, "input", "backward_filter");
  m.check_tensor(dy, m.out_shape, m.y_strides, "output gradient", "backward_filter");
  m.check_tensor(dw, m.p.weight, m.w_strides, "weight gradient", "backward_filter");
  DeviceGuard g(m.device);
  const Choice& c = m.choose(kBackwardFilter, x.raw_data(), dy.raw_data());
  ScratchBuffer ws(m.device, c.workspace);
  const float alpha = 1.f;
  HALO_CUDNN_CHECK(cudnnConvolutionBackwardFilter(m.prepare(c), &alpha, m.x_desc, x.raw_data(), m.y_desc,
                                                  dy.raw_data(), m.conv_desc, cudnnConvolutionBwdFilterAlgo_t(c.algo),
                                                  ws.ptr, c.workspace, &beta, m.w_desc, dw.raw_data()));
}

std::string ConvPlan::algorithms() const {
  const Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  std::ostringstream os;
  for (int d = 0; d < 3; ++d) {
    if (d) os << ' ';
    os << kDirName[d] << '=';
    if (!m.chosen[d]) {
      os << '?';
      continue;
    }
    const Choice& c = m.choice[d];
    os << (d == 0 ? fwd_algo_name(c.algo) : d == 1 ? bwd_data_algo_name(c.algo) : bwd_filter_algo_name(c.algo))
       << (is_tensor_op(c.math) ? "/tensor_op" : "") << '(' << c.workspace << " B)";
  }
  return os.str();
}

}  // namespace halo::cuda
