// A C interface to libtorch's c10d, the engine under torch.distributed:
// a TCPStore rendezvous, a Gloo process group, and the collectives data
// parallelism needs. Every entry point catches C++ exceptions and hands the
// message back, so nothing unwinds into Rust.

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <mutex>
#include <string>
#include <vector>

struct tb_group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
};

namespace {

char* copy_message(const std::string& text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, text.c_str(), text.size() + 1);
  }
  return out;
}

// Runs `body`; on a C++ exception stores its message in *err and returns false.
template <typename F>
bool guarded(char** err, F&& body) {
  try {
    body();
    return true;
  } catch (const c10::Error& e) {
    // c10 errors carry a C++ backtrace in what(); users need the message.
    *err = copy_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    *err = copy_message(e.what());
  } catch (...) {
    *err = copy_message("unknown C++ exception in c10d");
  }
  return false;
}

std::vector<at::Tensor> as_vector(at::Tensor** tensors, size_t count) {
  std::vector<at::Tensor> out;
  out.reserve(count);
  for (size_t i = 0; i < count; i++) {
    out.push_back(*tensors[i]);
  }
  return out;
}

// A socket listening on 127.0.0.1:port, for a store that must not be
// reachable from other machines (TCPStore itself listens on every interface).
int listen_on_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    throw std::runtime_error(std::string("cannot open a socket: ") + std::strerror(errno));
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 128) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + why);
  }
  return fd;
}

// Waits for every launched collective; the first failure wins.
void wait_all(std::vector<c10::intrusive_ptr<c10d::Work>>& works) {
  std::exception_ptr first;
  for (auto& work : works) {
    try {
      work->wait();
    } catch (...) {
      if (!first) {
        first = std::current_exception();
      }
    }
  }
  if (first) {
    std::rethrow_exception(first);
  }
}

} // namespace

extern "C" {

// Rendezvous at master_addr:port (rank 0 serves the store) and connect a Gloo
// group. bind_host, when not null, is the loopback address that this rank's
// Gloo device and rank 0's store bind to (a run on one machine); otherwise
// Gloo's default applies (GLOO_SOCKET_IFNAME, else the host name's address)
// and the store listens on every interface, as in PyTorch. serve_store is
// false when a launcher already serves it (torchrun's agent store); a
// non-empty key_prefix then keeps this attempt's keys apart, as PyTorch does.
// listen_fd, when not negative, is a socket already listening on the store's
// port (opened by the launcher), which rank 0's store serves from.
tb_group* tb_group_new_gloo(const char* master_addr, int port, int rank, int size, int64_t timeout_ms,
                            const char* bind_host, int serve_store, const char* key_prefix, int listen_fd, char** err) {
  tb_group* group = nullptr;
  guarded(err, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(port);
    store_options.isServer = rank == 0 && serve_store;
    store_options.numWorkers = static_cast<std::size_t>(size);
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    if (store_options.isServer && listen_fd >= 0) {
      store_options.masterListenFd = listen_fd;
    } else if (store_options.isServer && bind_host != nullptr) {
      // A run on one machine keeps its rendezvous on loopback too.
      store_options.masterListenFd = listen_on_loopback(port);
    }
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), store_options);
    if (key_prefix != nullptr && key_prefix[0] != '\0') {
      store = c10::make_intrusive<c10d::PrefixStore>(std::string(key_prefix), store);
    }
    c10::intrusive_ptr<c10d::ProcessGroupGloo::Options> options;
    if (bind_host != nullptr) {
      options = c10d::ProcessGroupGloo::Options::create(timeout);
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(bind_host));
    } else {
      options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    }
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
    group = new tb_group{store, backend};
  });
  return group;
}

void tb_group_free(tb_group* group) {
  delete group;
}

void tb_string_free(char* text) {
  std::free(text);
}

// In place, over all ranks: op 0 sums, op 1 takes the maximum. The
// collectives of all tensors run concurrently (Gloo's worker threads).
int tb_all_reduce(tb_group* group, at::Tensor** tensors, size_t count, int op, char** err) {
  return guarded(err, [&] {
    c10d::AllreduceOptions options;
    options.reduceOp = op == 1 ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& tensor : as_vector(tensors, count)) {
      std::vector<at::Tensor> one{tensor};
      works.push_back(group->backend->allreduce(one, options));
    }
    wait_all(works);
  }) ? 0 : -1;
}

// In place: every rank's tensors take root's values.
int tb_broadcast(tb_group* group, at::Tensor** tensors, size_t count, int root, char** err) {
  return guarded(err, [&] {
    c10d::BroadcastOptions options;
    options.rootRank = root;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& tensor : as_vector(tensors, count)) {
      std::vector<at::Tensor> one{tensor};
      works.push_back(group->backend->broadcast(one, options));
    }
    wait_all(works);
  }) ? 0 : -1;
}

int tb_barrier(tb_group* group, char** err) {
  return guarded(err, [&] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works{group->backend->barrier()};
    wait_all(works);
  }) ? 0 : -1;
}

// Gradient all-reduce overlapped with the backward pass, as DDP's reducer
// does: a hook on each parameter copies its gradient into a flat bucket, and
// a bucket's all-reduce starts as soon as the step's last backward has filled
// it. Buckets start strictly in order, so every rank issues the same
// collectives in the same order whatever order its hooks fire in.
struct tb_overlap {
  tb_group* group;
  std::vector<at::Tensor> params;
  std::vector<unsigned> hooks;
  std::vector<int> bucket_of;
  std::vector<int64_t> offset_of;
  std::vector<std::vector<int>> members;
  std::vector<at::Tensor> buckets;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  std::vector<int> waiting;          // per bucket: members not yet in from the last backward
  std::vector<uint8_t> reported;     // per parameter: a gradient arrived this step
  std::vector<uint8_t> in_last;      // per parameter: it arrived in the last backward
  size_t next_launch = 0;
  bool last = false;
  std::mutex mu;

  void on_grad(size_t i, const at::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mu);
    auto slot = buckets[bucket_of[i]].narrow(0, offset_of[i], params[i].numel());
    auto flat = grad.detach().reshape({-1});
    if (reported[i]) {
      slot.add_(flat.to(slot.options()));
    } else {
      slot.copy_(flat);
      reported[i] = 1;
    }
    if (last && !in_last[i]) {
      in_last[i] = 1;
      waiting[bucket_of[i]] -= 1;
      while (next_launch < buckets.size() && waiting[next_launch] == 0) {
        launch(next_launch++);
      }
    }
  }

  // Members without a gradient from this rank add zeros.
  void launch(size_t b) {
    for (int i : members[b]) {
      if (!reported[i]) {
        buckets[b].narrow(0, offset_of[i], params[i].numel()).zero_();
      }
    }
    std::vector<at::Tensor> one{buckets[b]};
    works[b] = group->backend->allreduce(one);
  }
};

// Buckets over params in reverse order (the order backward produces their
// gradients): the first of first_bytes, the rest of bucket_bytes.
tb_overlap* tb_overlap_new(tb_group* group, at::Tensor** params, size_t count, int64_t first_bytes,
                           int64_t bucket_bytes, char** err) {
  tb_overlap* o = nullptr;
  guarded(err, [&] {
    auto state = std::make_unique<tb_overlap>();
    state->group = group;
    state->params = as_vector(params, count);
    state->bucket_of.assign(count, -1);
    state->offset_of.assign(count, 0);
    std::vector<int64_t> sizes;
    std::vector<c10::ScalarType> kinds;
    for (size_t k = count; k-- > 0;) {
      const auto& p = state->params[k];
      int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
      int64_t cap = state->members.size() <= 1 ? first_bytes : bucket_bytes;
      bool fits = !state->members.empty() && kinds.back() == p.scalar_type() &&
                  (sizes.back() + p.numel()) * static_cast<int64_t>(p.element_size()) <= cap;
      if (!fits) {
        state->members.emplace_back();
        sizes.push_back(0);
        kinds.push_back(p.scalar_type());
      }
      state->bucket_of[k] = static_cast<int>(state->members.size() - 1);
      state->offset_of[k] = sizes.back();
      sizes.back() += p.numel();
      state->members.back().push_back(static_cast<int>(k));
      (void)bytes;
    }
    for (size_t b = 0; b < state->members.size(); b++) {
      state->buckets.push_back(at::empty({sizes[b]}, at::TensorOptions().dtype(kinds[b]).device(at::kCPU)));
    }
    state->works.resize(state->buckets.size());
    state->waiting.assign(state->buckets.size(), 0);
    state->reported.assign(count, 0);
    state->in_last.assign(count, 0);
    tb_overlap* raw = state.get();
    for (size_t i = 0; i < count; i++) {
      state->hooks.push_back(state->params[i].register_hook([raw, i](const at::Tensor& grad) { raw->on_grad(i, grad); }));
    }
    o = state.release();
  });
  return o;
}

void tb_overlap_free(tb_overlap* o) {
  if (o == nullptr) {
    return;
  }
  for (size_t i = 0; i < o->params.size(); i++) {
    try {
      o->params[i].remove_hook(o->hooks[i]);
    } catch (...) {
    }
  }
  delete o;
}

// Starts a step: no gradients yet, nothing launched.
void tb_overlap_begin_step(tb_overlap* o) {
  std::lock_guard<std::mutex> lock(o->mu);
  std::fill(o->reported.begin(), o->reported.end(), 0);
  std::fill(o->in_last.begin(), o->in_last.end(), 0);
  for (size_t b = 0; b < o->buckets.size(); b++) {
    o->waiting[b] = static_cast<int>(o->members[b].size());
    o->works[b].reset();
  }
  o->next_launch = 0;
  o->last = false;
}

// The next backward is this rank's last of the step: buckets launch as they fill.
void tb_overlap_last_backward(tb_overlap* o) {
  std::lock_guard<std::mutex> lock(o->mu);
  o->last = true;
}

// Launches what the backward passes did not, waits for every bucket, and
// gives back the summed buckets and which parameters this rank had gradients for.
int tb_overlap_finish(tb_overlap* o, at::Tensor** buckets_out, size_t bucket_count, uint8_t* reported_out, char** err) {
  return guarded(err, [&] {
    {
      std::lock_guard<std::mutex> lock(o->mu);
      while (o->next_launch < o->buckets.size()) {
        o->launch(o->next_launch++);
      }
    }
    wait_all(o->works);
    for (size_t b = 0; b < bucket_count && b < o->buckets.size(); b++) {
      *buckets_out[b] = o->buckets[b];
    }
    std::copy(o->reported.begin(), o->reported.end(), reported_out);
  }) ? 0 : -1;
}

size_t tb_overlap_bucket_count(tb_overlap* o) {
  return o->buckets.size();
}

// Where parameter i's gradient lies: its bucket and element offset.
void tb_overlap_place(tb_overlap* o, size_t i, int* bucket, int64_t* offset) {
  *bucket = o->bucket_of[i];
  *offset = o->offset_of[i];
}

} // extern "C"
