// See ../context.h: declarations only (held by shared_ptr, never dereferenced).
#pragma once
namespace gloo {
namespace transport {
class Device;
class UnboundBuffer;
} // namespace transport
} // namespace gloo
