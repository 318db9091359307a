// Device memory, for Rust: the caching allocator of the accelerator libtorch
// was built for (CUDA's on a CUDA build), through the device-generic
// `c10::DeviceAllocator` interface, so that this compiles against the CPU
// libtorch headers and works with whichever libtorch is loaded at run time.
#include <ATen/ATen.h>
#include <ATen/DeviceAccelerator.h>

#include <string>

namespace {
thread_local std::string last_error;

// Throws where no CUDA allocator is registered (a CPU libtorch); the Rust
// side calls only when CUDA is available.
c10::DeviceAllocator* cuda_allocator() { return at::getDeviceAllocator(c10::DeviceType::CUDA); }
}  // namespace

extern "C" {

// What libtorch said when the last call on this thread failed.
const char* tb_memory_last_error() { return last_error.c_str(); }

// Returns the blocks CUDA's caching allocator holds unused to the driver
// (torch.cuda.empty_cache()). 1 if it did, 0 before CUDA's first
// allocation, -1 if libtorch failed (see tb_memory_last_error).
int tb_cuda_empty_cache() {
  try {
    c10::DeviceAllocator* allocator = cuda_allocator();
    if (!allocator->initialized()) return 0;
    allocator->emptyCache();
    return 1;
  } catch (const std::exception& e) {
    last_error = e.what();
    return -1;
  }
}

// The peak of memory allocated on CUDA device `index` since the last reset
// (torch.cuda.max_memory_allocated), in bytes; -1 where there is none.
long long tb_cuda_peak_allocated(int index) {
  try {
    c10::DeviceAllocator* allocator = cuda_allocator();
    if (!allocator->initialized()) return -1;
    const auto stats = allocator->getDeviceStats(static_cast<c10::DeviceIndex>(index));
    return static_cast<long long>(stats.allocated_bytes[0].peak);
  } catch (const std::exception& e) {
    last_error = e.what();
    return -1;
  }
}

// `*tensor` in page-locked memory, as a new tensor the caller owns (tch's
// pin_memory passes the device argument libtorch 2.11 deprecates and warns
// about). Returns 0 if libtorch failed (see tb_memory_last_error).
int tb_pin_memory(const at::Tensor* tensor, at::Tensor** pinned) {
  try {
    *pinned = new at::Tensor(tensor->pin_memory());
    return 1;
  } catch (const std::exception& e) {
    last_error = e.what();
    return 0;
  }
}

// Resets device `index`'s peak (torch.cuda.reset_peak_memory_stats).
void tb_cuda_reset_peak(int index) {
  try {
    c10::DeviceAllocator* allocator = cuda_allocator();
    if (allocator->initialized()) allocator->resetPeakStats(static_cast<c10::DeviceIndex>(index));
  } catch (const std::exception& e) {
    last_error = e.what();
  }
}

}  // extern "C"
