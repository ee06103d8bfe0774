// The raw request and response of the service_server / service_client example pair.
#pragma once

#include <cstdint>

namespace examples {

inline constexpr const char* kServiceName = "multiply";

struct MultiplyRequest {
  std::uint64_t value;
  std::uint32_t length;  // responses wanted: value*1 .. value*length
  std::uint32_t pad;
};

struct MultiplyResponse {
  std::uint64_t product;
  std::uint64_t index;   // 1-based position in the stream
};

}  // namespace examples
