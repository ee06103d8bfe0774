// The one room for the control protocol's translation: conversions between shmbus's C++ types
// and schema/control.capnp's structs, and the form refusals travel in. Shared by the client
// library and shmbusd; not public API.
#pragma once

#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kj/exception.h>

#include "control.capnp.h"
#include "shmbus/client.hpp"
#include "shmbus/config.hpp"
#include "shmbus/error.hpp"

namespace shmbus::wire {

// --- Pieces of several structs ---
// Size classes, written in full (`out` sized by the caller), or read over `out`'s defaults:
// an empty list keeps them.
void to_wire(const std::vector<SizeClass>& classes, capnp::List<control::SizeClass>::Builder out);
void merge_classes(capnp::List<control::SizeClass>::Reader in, std::vector<SizeClass>& out);
// Bytes kept in a std::string (a schema) as capnp Data, and back.
kj::ArrayPtr<const capnp::byte> data_of(const std::string& bytes);
std::string bytes_of(capnp::Data::Reader data);

// --- Topic configuration ---
// Writes every field of `config` (a complete configuration, e.g. what a region was created
// with, or what a client asks for explicitly).
void to_wire(const TopicConfig& config, control::TopicConfig::Builder out);
// A request over `defaults`: fields the request leaves 0 / empty / unset keep the defaults
// (the daemon merges a client's openTopic over its own defaults this way). The backing is not
// part of shmbus::TopicConfig; the daemon reads it from the request itself.
TopicConfig merge_request(TopicConfig defaults, control::TopicConfig::Reader in);
// A complete configuration (a daemon reply): merge_request over TopicConfig's own defaults.
TopicConfig from_wire(control::TopicConfig::Reader in);

control::Policy to_wire(SlowSubscriberPolicy p);
SlowSubscriberPolicy from_wire(control::Policy p, SlowSubscriberPolicy fallback);

// --- Roles and slot references ---
control::Role to_wire(Role role);
Role from_wire(control::Role role);
const char* role_name(control::Role role);  // "publish" / "subscribe", as the access rules say

// One publisher/subscriber slot registration (control.capnp SlotRef).
struct SlotRef {
  std::string topic;
  Role role;
  std::uint32_t slot;
  std::uint64_t generation;
  auto operator<=>(const SlotRef&) const = default;
};
void to_wire(const SlotRef& ref, control::SlotRef::Builder out);
SlotRef from_wire(control::SlotRef::Reader in);

// --- Registry listings ---
// TopicInfo: `listing.config.schema` travels as typeSchema; `anonymous` as both backings.
void to_wire(const TopicListing& listing, control::TopicInfo::Builder out);
TopicListing from_wire(control::TopicInfo::Reader in);
// ClientInfo with its registrations (ClientListing's own list has no generations).
void to_wire(const ClientListing& client, std::span<const SlotRef> registrations, control::ClientInfo::Builder out);
ClientListing from_wire(control::ClientInfo::Reader in);
void to_wire(const BusStatusInfo& status, control::BusStatus::Builder out);
BusStatusInfo from_wire(control::BusStatus::Reader in);

// --- Durable topics (durable_wire.cpp) ---
void to_wire(const DurableLogInfo& log, control::DurableLog::Builder out);
DurableLogInfo from_wire(control::DurableLog::Reader in);

// --- Services (bus/control/service_wire.cpp) ---
// Every field of `config` but the schemas (they travel as openService's own parameters).
void to_wire(const ServiceConfig& config, control::ServiceConfig::Builder out);
// A request over ServiceConfig's defaults: fields left 0 / empty / unset keep them.
ServiceConfig from_wire(control::ServiceConfig::Reader in);
control::ServiceRole to_wire(ServiceRole role);
void to_wire(const ServiceListing& listing, control::ServiceInfo::Builder out);
ServiceListing from_wire(control::ServiceInfo::Reader in);

// --- Refusals ---
// The exception a daemon throws to refuse a request: text "[<RefusalCode name>] <message>"
// (see RefusalCode in control.capnp for why a text form).
kj::Exception refusal(control::RefusalCode code, std::string_view message);
// What a client received: the code (unspecified when the text lacks the form, e.g. from a
// daemon bug) and the daemon's message without the form or KJ's "remote exception: ".
struct Refusal {
  control::RefusalCode code = control::RefusalCode::UNSPECIFIED;
  std::string message;
};
Refusal read_refusal(std::string_view exception_text);
const char* refusal_name(control::RefusalCode code);  // the enumerant's name, e.g. "accessDenied"
// The shmbus::Errc a client throws for a refusal.
Errc to_errc(control::RefusalCode code);

}  // namespace shmbus::wire
