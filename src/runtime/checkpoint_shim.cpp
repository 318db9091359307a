// Gradient checkpointing, for Rust: a libtorch autograd Function that runs a
// block (a Rust closure) without keeping its activations, and runs it again
// in the backward pass to get its gradients, as torch.utils.checkpoint's
// reentrant variant does. tch has no custom autograd functions.
//
// The block's trainable parameters are explicit inputs of the Function, so
// that their gradients flow even when the block's input needs none (frozen
// embeddings, LoRA): a checkpoint keyed on its input alone would cut them off.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" {
// Runs the block on `input` (borrowed) and sets `*output` to a tensor the
// caller then owns (allocated with new, as tch's handles are). Returns 0 if
// the block failed; the Rust side keeps the reason.
typedef int (*tb_block_run)(void* state, const at::Tensor* input, at::Tensor** output);
// Frees the block's state once the graph holding it is gone.
typedef void (*tb_block_free)(void* state);
}

namespace {
thread_local std::string last_error;

struct Block : torch::CustomClassHolder {
  tb_block_run run;
  tb_block_free release;
  void* state;

  Block(tb_block_run run, tb_block_free release, void* state) : run(run), release(release), state(state) {}
  ~Block() override { release(state); }

  at::Tensor call(const at::Tensor& input) const {
    at::Tensor* output = nullptr;
    if (run(state, &input, &output) == 0 || output == nullptr) throw std::runtime_error(last_error.empty() ? "the block failed" : last_error);
    at::Tensor result = std::move(*output);
    delete output;
    return result;
  }
};

// The random generators' states, set to saved ones and put back when dropped,
// so that dropout draws the same masks when the block runs again.
struct ReplayRandom {
  at::Tensor cpu_before;
  std::optional<at::Device> device;
  at::Tensor device_before;

  ReplayRandom(const at::Tensor& cpu_state, std::optional<at::Device> device, const at::Tensor& device_state) : device(device) {
    cpu_before = swap_state(at::detail::getDefaultCPUGenerator(), cpu_state);
    if (device) device_before = swap_state(at::globalContext().defaultGenerator(*device), device_state);
  }
  ~ReplayRandom() {
    swap_state(at::detail::getDefaultCPUGenerator(), cpu_before);
    if (device) swap_state(at::globalContext().defaultGenerator(*device), device_before);
  }

  // Sets `gen`'s state under its lock, as PyTorch's fork_rng does; returns the old one.
  static at::Tensor swap_state(at::Generator gen, const at::Tensor& state) {
    std::lock_guard<std::mutex> lock(gen.mutex());
    at::Tensor before = gen.get_state();
    gen.set_state(state);
    return before;
  }
};

// Autocast for `type` as the forward pass had it, put back when dropped.
struct ReplayAutocast {
  at::DeviceType type;
  bool was_enabled;
  at::ScalarType was_dtype;

  ReplayAutocast(at::DeviceType type, bool enabled, at::ScalarType dtype)
      : type(type), was_enabled(at::autocast::is_autocast_enabled(type)), was_dtype(at::autocast::get_autocast_dtype(type)) {
    at::autocast::set_autocast_enabled(type, enabled);
    at::autocast::set_autocast_dtype(type, dtype);
    at::autocast::increment_nesting();
  }
  ~ReplayAutocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(type, was_enabled);
    at::autocast::set_autocast_dtype(type, was_dtype);
  }
};

at::Tensor current_state(at::Generator gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

struct Checkpoint : torch::autograd::Function<Checkpoint> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input, at::TensorList params,
                                                const c10::intrusive_ptr<Block>& block) {
    const at::Device device = input.device();
    ctx->saved_data["block"] = c10::IValue::make_capsule(block);
    ctx->saved_data["cpu_random"] = current_state(at::detail::getDefaultCPUGenerator());
    if (!device.is_cpu()) ctx->saved_data["device_random"] = current_state(at::globalContext().defaultGenerator(device));
    ctx->saved_data["autocast"] = at::autocast::is_autocast_enabled(device.type());
    ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(at::autocast::get_autocast_dtype(device.type()));
    std::vector<at::Tensor> kept{input};
    kept.insert(kept.end(), params.begin(), params.end());
    ctx->save_for_backward(kept);
    // Function::apply runs this with gradients off: nothing inside is kept.
    return {block->call(input)};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& input = saved[0];
    const at::Device device = input.device();
    auto block = c10::static_intrusive_pointer_cast<Block>(ctx->saved_data["block"].toCapsule());
    at::Tensor x = input.detach();
    x.requires_grad_(input.requires_grad());
    at::Tensor output;
    {
      std::optional<at::Device> other = device.is_cpu() ? std::nullopt : std::optional<at::Device>(device);
      ReplayRandom random(ctx->saved_data["cpu_random"].toTensor(), other, other ? ctx->saved_data["device_random"].toTensor() : at::Tensor());
      ReplayAutocast autocast(device.type(), ctx->saved_data["autocast"].toBool(), static_cast<at::ScalarType>(ctx->saved_data["autocast_dtype"].toInt()));
      at::AutoGradMode grad(true);
      output = block->call(x);
    }
    std::vector<at::Tensor> wrt;
    if (x.requires_grad()) wrt.push_back(x);
    for (size_t i = 1; i < saved.size(); ++i) {
      if (saved[i].requires_grad()) wrt.push_back(saved[i]);
    }
    std::vector<at::Tensor> grads;
    if (!wrt.empty() && output.requires_grad()) {
      grads = torch::autograd::grad({output}, wrt, {grad_outputs[0]}, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    } else {
      grads.resize(wrt.size());
    }
    // One gradient per forward argument: the input, each parameter, the block.
    torch::autograd::variable_list result;
    size_t next = 0;
    result.push_back(x.requires_grad() ? grads[next++] : at::Tensor());
    for (size_t i = 1; i < saved.size(); ++i) result.push_back(saved[i].requires_grad() ? grads[next++] : at::Tensor());
    result.emplace_back();
    return result;
  }
};
}  // namespace

extern "C" {

// What libtorch said when the last checkpoint call on this thread failed.
const char* tb_checkpoint_last_error() { return last_error.c_str(); }

// Sets that message: the Rust block says why it failed before returning 0.
void tb_checkpoint_set_error(const char* message) { last_error = message; }

// Whether autograd records operations on this thread (torch.is_grad_enabled()).
int tb_grad_enabled() { return at::GradMode::is_enabled() ? 1 : 0; }

// `run(state, input)` through a checkpoint with `params` as extra inputs.
// On success sets `*output` (owned by the caller) and returns 1; on failure
// returns 0 (see tb_checkpoint_last_error). `release(state)` is called once
// the block is no longer needed, whichever way this ends.
int tb_checkpoint(const at::Tensor* input, const at::Tensor* const* params, int count, tb_block_run run, tb_block_free release, void* state,
                  at::Tensor** output) {
  try {
    auto block = c10::make_intrusive<Block>(run, release, state);
    std::vector<at::Tensor> list;
    list.reserve(count);
    for (int i = 0; i < count; ++i) list.push_back(*params[i]);
    auto outputs = Checkpoint::apply(*input, at::TensorList(list), block);
    *output = new at::Tensor(std::move(outputs[0]));
    return 1;
  } catch (const std::exception& e) {
    last_error = e.what();
    return 0;
  }
}

}  // extern "C"
