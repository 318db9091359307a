// Mixed precision, for Rust: libtorch's per-device autocast controls (tch
// 0.24 only wraps CUDA's, through a call libtorch has deprecated), and the
// fused unscale of a whole list of gradients (tch passes one at a time).
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include <string>
#include <vector>

namespace {
at::DeviceType device_type(int cuda) { return cuda ? at::kCUDA : at::kCPU; }
}  // namespace

extern "C" {

int tb_autocast_is_enabled(int cuda) { return at::autocast::is_autocast_enabled(device_type(cuda)) ? 1 : 0; }

void tb_autocast_set_enabled(int cuda, int enabled) { at::autocast::set_autocast_enabled(device_type(cuda), enabled != 0); }

int tb_autocast_get_dtype(int cuda) { return static_cast<int>(at::autocast::get_autocast_dtype(device_type(cuda))); }

void tb_autocast_set_dtype(int cuda, int dtype) { at::autocast::set_autocast_dtype(device_type(cuda), static_cast<at::ScalarType>(dtype)); }

int tb_autocast_increment_nesting() { return at::autocast::increment_nesting(); }

int tb_autocast_decrement_nesting() { return at::autocast::decrement_nesting(); }

void tb_autocast_clear_cache() { at::autocast::clear_cache(); }

namespace {
thread_local std::string last_error;
}  // namespace

// What libtorch said when the last call on this thread failed.
const char* tb_amp_last_error() { return last_error.c_str(); }

// Divides each of `grads[0..count]` by `inv_scale`'s reciprocal in place and
// sets `found_inf` to 1 if any holds an inf or a NaN. Returns 0 if libtorch
// failed (see tb_amp_last_error), 1 otherwise.
int tb_amp_unscale(at::Tensor* const* grads, int count, at::Tensor* found_inf, at::Tensor* inv_scale) {
  try {
    std::vector<at::Tensor> list;
    list.reserve(count);
    for (int i = 0; i < count; ++i) list.push_back(*grads[i]);
    at::_amp_foreach_non_finite_check_and_unscale_(list, *found_inf, *inv_scale);
    return 1;
  } catch (const std::exception& e) {
    last_error = e.what();
    return 0;
  }
}

}  // extern "C"
