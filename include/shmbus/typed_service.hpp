// Typed services: a ServiceConfig for requests of Cap'n Proto type Req and responses of type
// Resp. It records both type ids and schemas (in the service region and in its two topics'
// regions), so that `shmbus call NAME '(text)'` builds a request from text and decodes the
// responses with no generated headers, and `shmbus service info` names the types.
//
//   shmbus::ServiceConfig c = shmbus::typed_service<Resize, Resized>("resize");
//   shmbus::Service svc = client.open_service(c, shmbus::ServiceRole::serve);   // or Service::create(c)
//
// The payloads stay bytes (RequestLoan::data(), ServiceResponse::data()): a typed request or
// response is one Cap'n Proto message in flat-array form (capnp::messageToFlatArray: segment
// table, then segments), which is what the CLI writes and reads.
#pragma once

#include <capnp/schema.h>

#include <string>

#include "shmbus/detail/chunk_message.hpp"
#include "shmbus/service.hpp"

namespace shmbus {

template <typename Req, typename Resp>
ServiceConfig typed_service(std::string name) {
  ServiceConfig c;
  c.name = std::move(name);
  c.request_type_id = capnp::typeId<Req>();
  c.response_type_id = capnp::typeId<Resp>();
  c.request_schema = detail::serialize_schema(capnp::Schema::from<Req>());
  c.response_schema = detail::serialize_schema(capnp::Schema::from<Resp>());
  return c;
}

}  // namespace shmbus
