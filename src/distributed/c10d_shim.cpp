// A C interface to libtorch's c10d, the engine under torch.distributed:
// a TCPStore rendezvous, a Gloo process group, and the collectives data
// parallelism needs. Every entry point catches C++ exceptions and hands the
// message back, so nothing unwinds into Rust.

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <cstring>
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
// group. bind_host, when not null, is the address this rank's Gloo device
// binds to; otherwise Gloo's default applies (GLOO_SOCKET_IFNAME, else the
// host name's address).
tb_group* tb_group_new_gloo(const char* master_addr, int port, int rank, int size, int64_t timeout_ms,
                            const char* bind_host, char** err) {
  tb_group* group = nullptr;
  guarded(err, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(port);
    store_options.isServer = rank == 0;
    store_options.numWorkers = static_cast<std::size_t>(size);
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), store_options);
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

} // extern "C"
