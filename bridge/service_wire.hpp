// Service calls between bridges on NATS (docs/bridge.md, "Services across buses").
//
//   request   B's bridge -> "<prefix>.<service>" (service '/' -> '.'), reply subject
//             "<B's inbox>.<call id>", payload = the request's bytes
//   replies   A's bridge -> the reply subject, one message per response of the call's stream,
//             in order: Shmbus-Index 0, 1, 2..., Shmbus-Last "1" on the last one;
//             or one message with Shmbus-Error (and Shmbus-Last "1") when the call failed on A.
//
// A stream of responses is several replies ended by Shmbus-Last: 1. "No responders" (no bridge
// serves the subject: NATS answers the reply subject with a 503 status) means server_gone.
#pragma once

namespace shmbus::bridge {

inline constexpr const char* kHeaderIndex = "Shmbus-Index";  // the response's place in its stream
inline constexpr const char* kHeaderLast = "Shmbus-Last";    // "1": the call's stream ends here; "0"
inline constexpr const char* kHeaderError = "Shmbus-Error";  // why the call failed on the serving bus
// Values of Shmbus-Error.
inline constexpr const char* kErrorServerGone = "server_gone";  // no server there, or it died
inline constexpr const char* kErrorTimeout = "timeout";         // its server did not answer in time
inline constexpr const char* kErrorRefused = "refused";         // the request could not be sent there
// NATS's own status header of a "no responders" reply.
inline constexpr const char* kNatsStatusHeader = "Status";
inline constexpr const char* kNatsNoResponders = "503";

}  // namespace shmbus::bridge
