// libtorch's fused Adam and AdamW kernels for Rust (tch 0.24 does not wrap
// them): one pass over each parameter instead of a chain of element-wise
// ops, on CPU and CUDA alike. transformers' Trainer uses the same kernel
// (its default optimizer, adamw_torch_fused).
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace {
thread_local std::string last_error;

std::vector<at::Tensor> list(at::Tensor* const* tensors, int count) {
  std::vector<at::Tensor> out;
  out.reserve(count);
  for (int i = 0; i < count; ++i) out.push_back(*tensors[i]);
  return out;
}
}  // namespace

extern "C" {

// What libtorch said when the last call on this thread failed.
const char* tb_optim_last_error() { return last_error.c_str(); }

// One Adam step over `count` parameters in place: their moments are updated
// and `steps` (fp32 scalars, already counting this step) give the bias
// corrections. `decoupled` picks AdamW's weight decay over Adam's L2.
// Returns 0 if libtorch failed (see tb_optim_last_error), 1 otherwise.
int tb_fused_adam(at::Tensor* const* params, at::Tensor* const* grads, at::Tensor* const* exp_avgs, at::Tensor* const* exp_avg_sqs,
                  at::Tensor* const* steps, int count, double lr, double beta1, double beta2, double weight_decay, double eps, int decoupled) {
  try {
    auto p = list(params, count), g = list(grads, count), m = list(exp_avgs, count), v = list(exp_avg_sqs, count), s = list(steps, count);
    std::vector<at::Tensor> no_max;  // amsgrad is off
    if (decoupled) {
      at::_fused_adamw_(p, g, m, v, no_max, s, lr, beta1, beta2, weight_decay, eps, false, false);
    } else {
      at::_fused_adam_(p, g, m, v, no_max, s, lr, beta1, beta2, weight_decay, eps, false, false);
    }
    return 1;
  } catch (const std::exception& e) {
    last_error = e.what();
    return 0;
  }
}

}  // extern "C"
