// Declarations only: ProcessGroupGloo.hpp names these gloo types, and the
// libtorch wheel ships without gloo's headers. Tunebook only ever holds them
// behind pointers that libtorch created, so no layout is assumed here.
#pragma once
#include <chrono>
namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};
} // namespace gloo
