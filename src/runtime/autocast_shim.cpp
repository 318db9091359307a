// libtorch's per-device autocast controls, for Rust: tch 0.24 only wraps
// CUDA's, through a call libtorch has deprecated.
#include <ATen/autocast_mode.h>

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

}  // extern "C"
