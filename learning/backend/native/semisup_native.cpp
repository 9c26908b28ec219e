// Native CPU kernels for semisup's "native" TensorFlow.js backend.
//
// Convolutions (forward, backward data, backward weights) run as oneDNN
// primitives on NHWC activations and HWIO filters, the layouts TensorFlow.js
// uses, so no tensor is transposed on the way in or out. Matrix products go
// to oneDNN's sgemm. Element-wise kernels, batch-norm and reductions are
// OpenMP loops that GCC vectorises. Every entry point is extern "C", takes
// raw float pointers owned by the caller (Float32Arrays of the JavaScript
// side) and returns 0 on success or -1 after storing a message that
// sn_last_error() returns.
//
// Build (learning/backend/_native_library.ts does this on first use):
//   g++ -O3 -march=native -fopenmp -shared -fPIC semisup_native.cpp -ldnnl -o libsemisup_native.so

#include <oneapi/dnnl/dnnl.hpp>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <immintrin.h>
#include <omp.h>

#include <chrono>

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

#ifndef CONV_ALGORITHM
#define CONV_ALGORITHM algorithm::convolution_direct
#endif

namespace {

thread_local std::string last_error;

// Loops over fewer elements run on one thread: waking the OpenMP team costs
// more than the work (SGD and EMA updates of small parameters).
constexpr int64_t kParallelMin = 1 << 15;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Geometry of one 2-D convolution: NHWC input, HWIO filter, NHWC output.
struct ConvShape {
  int64_t n, h, w, ci, kh, kw, co, sh, sw, pt, pl, pb, pr, oh, ow;

  std::string key() const {
    std::string k;
    for (int64_t v : {n, h, w, ci, kh, kw, co, sh, sw, pt, pl, pb, pr, oh, ow}) k += std::to_string(v) + ",";
    return k;
  }
};

// Primitives for one convolution geometry, created once and reused. Filter
// layouts are left to oneDNN ("any") and reordered from and to HWIO.
struct ConvPlan {
  memory::desc src, dst, weights_user, bias;
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::convolution_forward forward, forward_with_bias;
  dnnl::convolution_forward::primitive_desc forward_bias_pd;
  dnnl::convolution_backward_data::primitive_desc backward_data_pd;
  dnnl::convolution_backward_data backward_data;
  dnnl::convolution_backward_weights::primitive_desc backward_weights_pd;
  dnnl::convolution_backward_weights backward_weights;
  dnnl::reorder weights_in_forward, weights_in_forward_bias, weights_in_backward_data, weights_out_backward;
};

std::mutex plan_mutex;
std::unordered_map<std::string, std::unique_ptr<ConvPlan>> plans;

std::unique_ptr<ConvPlan> make_plan(const ConvShape& s) {
  auto& eng = cpu_engine();
  auto plan = std::make_unique<ConvPlan>();
  plan->src = memory::desc({s.n, s.ci, s.h, s.w}, dt::f32, tag::nhwc);
  plan->dst = memory::desc({s.n, s.co, s.oh, s.ow}, dt::f32, tag::nhwc);
  plan->weights_user = memory::desc({s.co, s.ci, s.kh, s.kw}, dt::f32, tag::hwio);
  plan->bias = memory::desc({s.co}, dt::f32, tag::x);
  memory::desc weights_any({s.co, s.ci, s.kh, s.kw}, dt::f32, tag::any);
  memory::dims strides = {s.sh, s.sw};
  memory::dims pad_l = {s.pt, s.pl};
  memory::dims pad_r = {s.pb, s.pr};

  dnnl::convolution_forward::desc forward_desc(prop_kind::forward_training, CONV_ALGORITHM, plan->src,
                                               weights_any, plan->dst, strides, pad_l, pad_r);
  plan->forward_pd = dnnl::convolution_forward::primitive_desc(forward_desc, eng);
  plan->forward = dnnl::convolution_forward(plan->forward_pd);

  dnnl::convolution_forward::desc forward_bias_desc(prop_kind::forward_training, CONV_ALGORITHM,
                                                    plan->src, weights_any, plan->bias, plan->dst, strides, pad_l,
                                                    pad_r);
  plan->forward_bias_pd = dnnl::convolution_forward::primitive_desc(forward_bias_desc, eng);
  plan->forward_with_bias = dnnl::convolution_forward(plan->forward_bias_pd);

  dnnl::convolution_backward_data::desc data_desc(CONV_ALGORITHM, plan->src, weights_any, plan->dst,
                                                  strides, pad_l, pad_r);
  plan->backward_data_pd = dnnl::convolution_backward_data::primitive_desc(data_desc, eng, plan->forward_pd);
  plan->backward_data = dnnl::convolution_backward_data(plan->backward_data_pd);

  dnnl::convolution_backward_weights::desc weights_desc(CONV_ALGORITHM, plan->src, weights_any,
                                                        plan->dst, strides, pad_l, pad_r);
  plan->backward_weights_pd =
      dnnl::convolution_backward_weights::primitive_desc(weights_desc, eng, plan->forward_pd);
  plan->backward_weights = dnnl::convolution_backward_weights(plan->backward_weights_pd);

  plan->weights_in_forward = dnnl::reorder(dnnl::reorder::primitive_desc(
      eng, plan->weights_user, eng, plan->forward_pd.weights_desc()));
  plan->weights_in_forward_bias = dnnl::reorder(dnnl::reorder::primitive_desc(
      eng, plan->weights_user, eng, plan->forward_bias_pd.weights_desc()));
  plan->weights_in_backward_data = dnnl::reorder(dnnl::reorder::primitive_desc(
      eng, plan->weights_user, eng, plan->backward_data_pd.weights_desc()));
  plan->weights_out_backward = dnnl::reorder(dnnl::reorder::primitive_desc(
      eng, plan->backward_weights_pd.diff_weights_desc(), eng, plan->weights_user));
  return plan;
}

ConvPlan& plan_for(const ConvShape& s) {
  std::lock_guard<std::mutex> lock(plan_mutex);
  auto& slot = plans[s.key()];
  if (!slot) slot = make_plan(s);
  return *slot;
}

ConvShape conv_shape(const int64_t* d) {
  return ConvShape{d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14]};
}

// Runs `body`, turning any exception into -1 and a stored message.
template <typename F>
int guarded(const char* what, F body) {
  try {
    body();
    return 0;
  } catch (const dnnl::error& e) {
    last_error = std::string(what) + ": oneDNN error " + std::to_string(static_cast<int>(e.status)) + ": " + e.what();
  } catch (const std::exception& e) {
    last_error = std::string(what) + ": " + e.what();
  }
  return -1;
}

// Runs one reorder (a small filter copy between layouts) followed by a primitive.
memory reordered_weights(dnnl::stream& stream, dnnl::reorder& reorder, const memory::desc& user, const memory::desc& target,
                         float* user_data) {
  auto& eng = cpu_engine();
  memory user_memory(user, eng, user_data);
  if (target == user) return user_memory;
  memory target_memory(target, eng);
  reorder.execute(stream, user_memory, target_memory);
  return target_memory;
}

}  // namespace

extern "C" {

const char* sn_last_error() { return last_error.c_str(); }

int sn_version() { return 1; }

int sn_max_threads() { return omp_get_max_threads(); }

void sn_set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

// dims: n, h, w, ci, kh, kw, co, sh, sw, pt, pl, pb, pr, oh, ow. bias may be null.
int sn_conv2d_forward(const int64_t* dims, const float* x, const float* filter, const float* bias, float* y) {
  return guarded("conv2d forward", [&] {
    ConvShape s = conv_shape(dims);
    ConvPlan& plan = plan_for(s);
    auto& eng = cpu_engine();
    dnnl::stream stream(eng);
    const auto& pd = bias ? plan.forward_bias_pd : plan.forward_pd;
    memory weights = reordered_weights(stream, bias ? plan.weights_in_forward_bias : plan.weights_in_forward,
                                       plan.weights_user, pd.weights_desc(), const_cast<float*>(filter));
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, memory(plan.src, eng, const_cast<float*>(x))},
        {DNNL_ARG_WEIGHTS, weights},
        {DNNL_ARG_DST, memory(plan.dst, eng, y)},
    };
    if (bias) {
      args.insert({DNNL_ARG_BIAS, memory(plan.bias, eng, const_cast<float*>(bias))});
      plan.forward_with_bias.execute(stream, args);
    } else {
      plan.forward.execute(stream, args);
    }
    stream.wait();
  });
}

// d loss / d input from d loss / d output and the filter.
int sn_conv2d_backward_data(const int64_t* dims, const float* dy, const float* filter, float* dx) {
  return guarded("conv2d backward data", [&] {
    ConvShape s = conv_shape(dims);
    ConvPlan& plan = plan_for(s);
    auto& eng = cpu_engine();
    dnnl::stream stream(eng);
    memory weights = reordered_weights(stream, plan.weights_in_backward_data, plan.weights_user,
                                       plan.backward_data_pd.weights_desc(), const_cast<float*>(filter));
    plan.backward_data.execute(stream, {
                                           {DNNL_ARG_DIFF_DST, memory(plan.dst, eng, const_cast<float*>(dy))},
                                           {DNNL_ARG_WEIGHTS, weights},
                                           {DNNL_ARG_DIFF_SRC, memory(plan.src, eng, dx)},
                                       });
    stream.wait();
  });
}

// d loss / d filter (HWIO) from the input and d loss / d output.
int sn_conv2d_backward_weights(const int64_t* dims, const float* x, const float* dy, float* dfilter) {
  return guarded("conv2d backward weights", [&] {
    ConvShape s = conv_shape(dims);
    ConvPlan& plan = plan_for(s);
    auto& eng = cpu_engine();
    dnnl::stream stream(eng);
    const memory::desc& diff_desc = plan.backward_weights_pd.diff_weights_desc();
    memory user(plan.weights_user, eng, dfilter);
    memory diff = diff_desc == plan.weights_user ? user : memory(diff_desc, eng);
    plan.backward_weights.execute(stream, {
                                              {DNNL_ARG_SRC, memory(plan.src, eng, const_cast<float*>(x))},
                                              {DNNL_ARG_DIFF_DST, memory(plan.dst, eng, const_cast<float*>(dy))},
                                              {DNNL_ARG_DIFF_WEIGHTS, diff},
                                          });
    if (!(diff_desc == plan.weights_user)) plan.weights_out_backward.execute(stream, diff, user);
    stream.wait();
  });
}

// Row-major C[b] = op(A[b]) x op(B[b]) for b < batch; a batch stride of 0
// reuses one matrix for every product (broadcast).
int sn_matmul(int64_t batch, int64_t m, int64_t n, int64_t k, int transpose_a, int transpose_b, const float* a,
              int64_t stride_a, const float* b, int64_t stride_b, float* c) {
  return guarded("matmul", [&] {
    const int64_t lda = transpose_a ? m : k;
    const int64_t ldb = transpose_b ? k : n;
    for (int64_t i = 0; i < batch; ++i) {
      dnnl_status_t status = dnnl_sgemm(transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', m, n, k, 1.0f,
                                        a + i * stride_a, lda, b + i * stride_b, ldb, 0.0f, c + i * m * n, n);
      if (status != dnnl_success) throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(status));
    }
  });
}

}  // extern "C"

namespace {

// Element-wise binary ops, numbered as the JavaScript side passes them.
enum BinaryOp { ADD = 0, SUB = 1, MUL = 2, DIV = 3, SQUARED_DIFFERENCE = 4, MAXIMUM = 5, MINIMUM = 6 };

// Calls body(f) with the function of binary op `op`; returns false for an
// unknown op. Each loop is compiled once per op, so the op is not tested per
// element.
template <typename Body>
bool with_binary_op(int op, Body body) {
  switch (op) {
    case ADD: body([](float x, float y) { return x + y; }); return true;
    case SUB: body([](float x, float y) { return x - y; }); return true;
    case MUL: body([](float x, float y) { return x * y; }); return true;
    case DIV: body([](float x, float y) { return x / y; }); return true;
    case SQUARED_DIFFERENCE: body([](float x, float y) { return (x - y) * (x - y); }); return true;
    case MAXIMUM: body([](float x, float y) { return std::isnan(x) || x > y ? x : y; }); return true;
    case MINIMUM: body([](float x, float y) { return std::isnan(x) || x < y ? x : y; }); return true;
    default: return false;
  }
}

// Each operand has size n (same shape), or a size that divides n when its
// shape is a suffix of the output's (a scalar, a per-channel vector), read at
// index i % size.

template <typename F>
void broadcast_loop(const float* a, int64_t na, const float* b, int64_t nb, float* out, int64_t n, F f) {
  if (na == n && nb == n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
  } else if (na == n && nb == 1) {
    const float bv = b[0];
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], bv);
  } else if (na == 1 && nb == n) {
    const float av = a[0];
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) out[i] = f(av, b[i]);
  } else if (na == n) {
    const int64_t rows = n / nb;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      const float* ar = a + r * nb;
      float* o = out + r * nb;
#pragma omp simd
      for (int64_t j = 0; j < nb; ++j) o[j] = f(ar[j], b[j]);
    }
  } else if (nb == n) {
    const int64_t rows = n / na;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      const float* br = b + r * na;
      float* o = out + r * na;
#pragma omp simd
      for (int64_t j = 0; j < na; ++j) o[j] = f(a[j], br[j]);
    }
  } else {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i % na], b[i % nb]);
  }
}

}  // namespace

extern "C" {

int sn_binary(int op, const float* a, int64_t na, const float* b, int64_t nb, float* out, int64_t n) {
  if (na <= 0 || nb <= 0 || n % na != 0 || n % nb != 0) {
    last_error = "binary: operand sizes " + std::to_string(na) + " and " + std::to_string(nb) +
                 " do not divide the output size " + std::to_string(n);
    return -1;
  }
  if (!with_binary_op(op, [&](auto f) { broadcast_loop(a, na, b, nb, out, n, f); })) {
    last_error = "binary: unknown op " + std::to_string(op);
    return -1;
  }
  return 0;
}

// Element-wise binary op with general broadcasting over rank <= 6: operand
// element strides are 0 along broadcast axes (for example d loss / d x of a
// global mean pool, [N, 1, 1, C] against [N, H, W, C]).
int sn_binary_strided(int op, const float* a, const int64_t* a_strides, const float* b, const int64_t* b_strides,
                      float* out, const int64_t* shape, int rank) {
  return guarded("binary (strided)", [&] {
    if (rank < 1 || rank > 6) throw std::runtime_error("rank must be 1..6");
    int64_t total = 1;
    for (int i = 0; i < rank; ++i) total *= shape[i];
    const int64_t inner = shape[rank - 1];
    const int64_t outer = inner == 0 ? 0 : total / inner;
    const int64_t sa = a_strides[rank - 1];
    const int64_t sb = b_strides[rank - 1];

    const bool known = with_binary_op(op, [&](auto f) {
#pragma omp parallel for schedule(static) if (total >= kParallelMin)
      for (int64_t o = 0; o < outer; ++o) {
        int64_t rem = o, ia = 0, ib = 0;
        for (int d = rank - 2; d >= 0; --d) {
          const int64_t k = rem % shape[d];
          rem /= shape[d];
          ia += k * a_strides[d];
          ib += k * b_strides[d];
        }
        float* dst = out + o * inner;
        for (int64_t j = 0; j < inner; ++j) dst[j] = f(a[ia + j * sa], b[ib + j * sb]);
      }
    });
    if (!known) throw std::runtime_error("unknown op " + std::to_string(op));
  });
}

// Element-wise unary ops; alpha is LeakyRelu's slope.
enum UnaryOp { NEG = 0, RELU = 1, LEAKY_RELU = 2, RSQRT = 3, SQRT = 4, EXP = 5, LOG = 6, SQUARE = 7, ABS = 8 };

}  // extern "C"

namespace {

template <typename F>
void unary_loop(const float* x, float* y, int64_t n, F f) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

}  // namespace

extern "C" {

int sn_unary(int op, const float* x, float* y, int64_t n, float alpha) {
  switch (op) {
    case NEG: unary_loop(x, y, n, [](float v) { return -v; }); break;
    case RELU: unary_loop(x, y, n, [](float v) { return std::isnan(v) ? v : (v > 0.0f ? v : 0.0f); }); break;
    case LEAKY_RELU:
      // A multiply by a selected factor vectorises; the plain conditional
      // compiled to a branch that random signs mispredict (6x slower).
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] * (x[i] < 0.0f ? alpha : 1.0f);
      break;
    case RSQRT: unary_loop(x, y, n, [](float v) { return 1.0f / std::sqrt(v); }); break;
    case SQRT: unary_loop(x, y, n, [](float v) { return std::sqrt(v); }); break;
    case EXP: unary_loop(x, y, n, [](float v) { return std::exp(v); }); break;
    case LOG: unary_loop(x, y, n, [](float v) { return std::log(v); }); break;
    case SQUARE: unary_loop(x, y, n, [](float v) { return v * v; }); break;
    case ABS: unary_loop(x, y, n, [](float v) { return std::fabs(v); }); break;
    default: last_error = "unary: unknown op " + std::to_string(op); return -1;
  }
  return 0;
}

// Comparisons with the same broadcasting as sn_binary. Each out[i] is 0 or 1.
enum CompareOp { GREATER = 0, GREATER_EQUAL = 1, LESS = 2, LESS_EQUAL = 3, EQUAL = 4 };

int sn_compare(int op, const float* a, int64_t na, const float* b, int64_t nb, uint8_t* out, int64_t n) {
  if (na <= 0 || nb <= 0 || n % na != 0 || n % nb != 0) {
    last_error = "compare: operand sizes do not divide the output size";
    return -1;
  }
  if (op < GREATER || op > EQUAL) {
    last_error = "compare: unknown op " + std::to_string(op);
    return -1;
  }
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float x = a[na == n ? i : i % na];
    const float y = b[nb == n ? i : i % nb];
    bool r = false;
    switch (op) {
      case GREATER: r = x > y; break;
      case GREATER_EQUAL: r = x >= y; break;
      case LESS: r = x < y; break;
      case LESS_EQUAL: r = x <= y; break;
      default: r = x == y; break;
    }
    out[i] = r ? 1 : 0;
  }
  return 0;
}

// out[i] = condition[i] ? a[i] : b[i] (all of size n).
int sn_select(const uint8_t* condition, const float* a, const float* b, float* out, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) out[i] = condition[i] ? a[i] : b[i];
  return 0;
}

// y = (x - mean) * rsqrt(variance + eps) * scale + offset over the last axis
// of size channels; each of mean, variance, scale, offset has size 1 or
// channels (scale and offset may be null).
int sn_batch_norm(const float* x, int64_t n, int64_t channels, const float* mean, int64_t n_mean,
                  const float* variance, int64_t n_variance, const float* scale, int64_t n_scale, const float* offset,
                  int64_t n_offset, float eps, float* y) {
  return guarded("batch norm", [&] {
    if (channels <= 0 || n % channels != 0) throw std::runtime_error("size is not a multiple of the channel count");
    std::unique_ptr<float[]> center(new float[channels]), factor(new float[channels]), shift(new float[channels]);
    // Operands of size 1 apply to every channel.
    auto channel_value = [](const float* values, int64_t size, int64_t c) { return values[size == 1 ? 0 : c]; };
    for (int64_t c = 0; c < channels; ++c) {
      float gamma = 1.0f;
      if (scale) gamma = channel_value(scale, n_scale, c);
      float beta = 0.0f;
      if (offset) beta = channel_value(offset, n_offset, c);
      center[c] = channel_value(mean, n_mean, c);
      factor[c] = gamma / std::sqrt(channel_value(variance, n_variance, c) + eps);
      shift[c] = beta;
    }
    const int64_t rows = n / channels;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * channels;
      float* yr = y + r * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) yr[c] = (xr[c] - center[c]) * factor[c] + shift[c];
    }
  });
}

// Sums x viewed as [outer, reduced, inner] over its middle axis and
// multiplies by scale: out[o * inner + j] = scale * sum_r x[(o * reduced + r) * inner + j],
// accumulating in double. Sums over leading axes have outer 1, over
// trailing axes inner 1; a mean passes scale 1 / reduced.
int sn_reduce_sum(const float* x, int64_t outer, int64_t reduced, int64_t inner, double scale, float* out) {
  return guarded("reduce sum", [&] {
    if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * reduced >= kParallelMin)
      for (int64_t o = 0; o < outer; ++o) {
        double total = 0;
        const float* xo = x + o * reduced;
        for (int64_t r = 0; r < reduced; ++r) total += xo[r];
        out[o] = static_cast<float>(total * scale);
      }
      return;
    }
    if (outer >= omp_get_max_threads() * 4) {
#pragma omp parallel for schedule(static)
      for (int64_t o = 0; o < outer; ++o) {
        std::unique_ptr<double[]> acc(new double[inner]());
        const float* xo = x + o * reduced * inner;
        for (int64_t r = 0; r < reduced; ++r) {
          const float* xr = xo + r * inner;
          for (int64_t j = 0; j < inner; ++j) acc[j] += xr[j];
        }
        for (int64_t j = 0; j < inner; ++j) out[o * inner + j] = static_cast<float>(acc[j] * scale);
      }
      return;
    }
    // Few outer rows: split the reduced axis between threads.
    const int threads = omp_get_max_threads();
    std::unique_ptr<double[]> partial(new double[threads * inner]);
    for (int64_t o = 0; o < outer; ++o) {
      std::fill(partial.get(), partial.get() + threads * inner, 0.0);
      const float* xo = x + o * reduced * inner;
#pragma omp parallel if (reduced * inner >= kParallelMin)
      {
        double* acc = partial.get() + omp_get_thread_num() * inner;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < reduced; ++r) {
          const float* xr = xo + r * inner;
          for (int64_t j = 0; j < inner; ++j) acc[j] += xr[j];
        }
      }
      for (int64_t j = 0; j < inner; ++j) {
        double total = 0;
        for (int t = 0; t < threads; ++t) total += partial[t * inner + j];
        out[o * inner + j] = static_cast<float>(total * scale);
      }
    }
  });
}

// Permutes the axes of a tensor of rank <= 6: out has shape shape[perm[i]].
int sn_transpose(const float* x, const int64_t* shape, const int64_t* perm, int rank, float* out) {
  return guarded("transpose", [&] {
    if (rank < 1 || rank > 6) throw std::runtime_error("rank must be 1..6");
    int64_t in_strides[6], out_shape[6], src_strides[6];
    in_strides[rank - 1] = 1;
    for (int i = rank - 2; i >= 0; --i) in_strides[i] = in_strides[i + 1] * shape[i + 1];
    int64_t total = 1;
    for (int i = 0; i < rank; ++i) {
      out_shape[i] = shape[perm[i]];
      src_strides[i] = in_strides[perm[i]];
      total *= out_shape[i];
    }
    const int64_t inner = out_shape[rank - 1];
    const int64_t inner_stride = src_strides[rank - 1];
    const int64_t outer = total / (inner == 0 ? 1 : inner);
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
      int64_t rem = o, src = 0;
      for (int i = rank - 2; i >= 0; --i) {
        src += (rem % out_shape[i]) * src_strides[i];
        rem /= out_shape[i];
      }
      float* dst = out + o * inner;
      for (int64_t j = 0; j < inner; ++j) dst[j] = x[src + j * inner_stride];
    }
  });
}

// Train-mode batch norm over the last axis of x viewed as [rows, channels]:
// mean and biased variance per channel (two passes, double accumulators),
// then y = (x - mean) / sqrt(variance + eps) * gamma + beta.
int sn_batch_norm_train(const float* x, int64_t rows, int64_t channels, const float* gamma, const float* beta,
                        float eps, float* y, float* mean_out, float* variance_out) {
  return guarded("train batch norm", [&] {
    const int threads = omp_get_max_threads();
    std::unique_ptr<double[]> partial(new double[threads * channels]);
    std::unique_ptr<float[]> mean(new float[channels]), factor(new float[channels]);
    auto reduce = [&](auto term) {
      std::fill(partial.get(), partial.get() + threads * channels, 0.0);
#pragma omp parallel
      {
        double* acc = partial.get() + omp_get_thread_num() * channels;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
          const float* xr = x + r * channels;
          for (int64_t c = 0; c < channels; ++c) acc[c] += term(xr[c], c);
        }
      }
    };
    reduce([](float v, int64_t) { return static_cast<double>(v); });
    for (int64_t c = 0; c < channels; ++c) {
      double total = 0;
      for (int t = 0; t < threads; ++t) total += partial[t * channels + c];
      mean[c] = static_cast<float>(total / rows);
    }
    reduce([&](float v, int64_t c) {
      const double d = static_cast<double>(v) - mean[c];
      return d * d;
    });
    for (int64_t c = 0; c < channels; ++c) {
      double total = 0;
      for (int t = 0; t < threads; ++t) total += partial[t * channels + c];
      const float variance = static_cast<float>(total / rows);
      mean_out[c] = mean[c];
      variance_out[c] = variance;
      factor[c] = gamma[c] / std::sqrt(variance + eps);
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * channels;
      float* yr = y + r * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) yr[c] = (xr[c] - mean[c]) * factor[c] + beta[c];
    }
  });
}

// Gradient of sn_batch_norm_train, PyTorch's closed form with M = rows and
// xHat = (x - mean) / sqrt(variance + eps):
//   dBeta = sum(dy), dGamma = sum(dy * xHat),
//   dx = gamma / sqrt(variance + eps) * (dy - dBeta / M - xHat * dGamma / M).
int sn_batch_norm_train_backward(const float* dy, const float* x, int64_t rows, int64_t channels, const float* gamma,
                                 const float* mean, const float* variance, float eps, float* dx, float* dgamma,
                                 float* dbeta) {
  return guarded("train batch norm backward", [&] {
    const int threads = omp_get_max_threads();
    std::unique_ptr<double[]> sum_dy(new double[threads * channels]()), sum_dy_xhat(new double[threads * channels]());
    std::unique_ptr<float[]> inv_std(new float[channels]), a(new float[channels]), b(new float[channels]);
    for (int64_t c = 0; c < channels; ++c) inv_std[c] = 1.0f / std::sqrt(variance[c] + eps);
#pragma omp parallel
    {
      double* s1 = sum_dy.get() + omp_get_thread_num() * channels;
      double* s2 = sum_dy_xhat.get() + omp_get_thread_num() * channels;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * channels;
        const float* dyr = dy + r * channels;
        for (int64_t c = 0; c < channels; ++c) {
          s1[c] += dyr[c];
          s2[c] += static_cast<double>(dyr[c]) * ((xr[c] - mean[c]) * inv_std[c]);
        }
      }
    }
    for (int64_t c = 0; c < channels; ++c) {
      double t1 = 0, t2 = 0;
      for (int t = 0; t < threads; ++t) {
        t1 += sum_dy[t * channels + c];
        t2 += sum_dy_xhat[t * channels + c];
      }
      dbeta[c] = static_cast<float>(t1);
      dgamma[c] = static_cast<float>(t2);
      const float factor = gamma[c] * inv_std[c];
      // dx = factor * dy + a * xHat + b.
      a[c] = -factor * dgamma[c] / static_cast<float>(rows);
      b[c] = -factor * dbeta[c] / static_cast<float>(rows);
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * channels;
      const float* dyr = dy + r * channels;
      float* dxr = dx + r * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {
        const float x_hat = (xr[c] - mean[c]) * inv_std[c];
        dxr[c] = dyr[c] * (gamma[c] * inv_std[c]) + x_hat * a[c] + b[c];
      }
    }
  });
}

// Gradient of LeakyReLU: dx = x > 0 ? dy : alpha * dy.
int sn_leaky_relu_backward(const float* dy, const float* x, int64_t n, float alpha, float* dx) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = x[i] > 0.0f ? dy[i] : alpha * dy[i];
  return 0;
}

// Measures the fp32 multiply-add peak in GFLOP/s: every OpenMP thread runs
// independent chains of 16-lane FMAs (AVX-512 where compiled for it,
// otherwise the compiler's widest vectors) for about `seconds`.
double sn_fma_peak(double seconds) {
  constexpr int kChains = 12;
  constexpr int64_t kInner = 1 << 16;
  double flops_total = 0;
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : flops_total)
  {
    typedef float v16 __attribute__((vector_size(64)));
    v16 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = v16{} + 0.5f + c * 1e-3f;
    const v16 mul = v16{} + 0.999999f, add = v16{} + 1e-7f;
    int64_t rounds = 0;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
      for (int64_t i = 0; i < kInner; ++i) {
        for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * mul + add;
      }
      ++rounds;
    }
    float sink = 0;
    for (int c = 0; c < kChains; ++c) sink += acc[c][0];
    // Keeps the loop from being optimised away.
    if (sink == 12345.0f) last_error = "unreachable";
    flops_total += static_cast<double>(rounds) * kInner * kChains * 16 * 2;
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return flops_total / elapsed / 1e9;
}

}  // extern "C"
