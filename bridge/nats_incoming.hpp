// A message the NATS C client delivered, seen through the engine's IncomingMessage: read in
// place; the caller owns (and destroys) the natsMsg.
#pragma once

#include <nats/nats.h>

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

#include "engine.hpp"

namespace shmbus::bridge {

class NatsIncoming final : public IncomingMessage {
 public:
  explicit NatsIncoming(natsMsg* m) : msg_(m) {}
  std::string_view subject() const override { return natsMsg_GetSubject(msg_); }
  std::span<const std::byte> payload() const override {
    return {reinterpret_cast<const std::byte*>(natsMsg_GetData(msg_)), static_cast<std::size_t>(natsMsg_GetDataLength(msg_))};
  }
  std::optional<std::string_view> header(const char* key) const override {
    const char* v = nullptr;
    natsStatus s = natsMsgHeader_Get(msg_, key, &v);
    if (s == NATS_OK && v) return std::string_view(v);
    if (s != NATS_NOT_FOUND) malformed_ = true;
    return std::nullopt;
  }
  bool headers_malformed() const override { return malformed_; }

 private:
  natsMsg* msg_;
  mutable bool malformed_ = false;
};

}  // namespace shmbus::bridge
