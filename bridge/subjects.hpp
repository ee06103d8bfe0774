// The bridge's wire conventions on NATS: subject names, header names, schema ids.
//
//   topic "camera/front" under prefix "shmbus"  <->  subject "shmbus.camera.front"
//   schema requests                              ->  subject "shmbus._schema.<schema id>"
//
// A topic crosses only when its name maps back to itself: no '.', no whitespace, no '*' or
// '>', no empty path component, and a first component other than "_schema".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shmbus::bridge {

// Headers of every bridged message (values are decimal unless said otherwise).
inline constexpr const char* kHeaderType = "Shmbus-Type";            // Cap'n Proto type id; 0 = raw
inline constexpr const char* kHeaderSchema = "Shmbus-Schema";        // schema id (16 hex), typed only
inline constexpr const char* kHeaderOrigin = "Shmbus-Origin";        // bus id of the exporting bridge
inline constexpr const char* kHeaderSequence = "Shmbus-Seq";         // the message's sequence on its bus
inline constexpr const char* kHeaderExportSeq = "Shmbus-Export-Seq"; // 1, 2, 3... per topic and run
inline constexpr const char* kHeaderRun = "Shmbus-Run";              // the exporting run (16 hex)
inline constexpr const char* kHeaderSegments = "Shmbus-Segments";    // word counts "n1,n2,..", when > 1 segment
inline constexpr const char* kSchemaToken = "_schema";

// The subject of `topic` under `prefix`, or nullopt when the name cannot cross (see above).
std::optional<std::string> subject_of(std::string_view prefix, std::string_view topic);
// The topic of `subject` under `prefix`, or nullopt when it is not one of ours.
std::optional<std::string> topic_of(std::string_view prefix, std::string_view subject);
std::string schema_subject(std::string_view prefix, std::string_view schema_id);
bool valid_subject_prefix(std::string_view prefix);
bool valid_bus_id(std::string_view id);
// '*' matches any characters including '/', '?' one, [..] a set (fnmatch without FNM_PATHNAME).
bool topic_matches(const std::string& glob, const std::string& topic);
// 64-bit FNV-1a of the serialized schema, as 16 hex digits.
std::string schema_id_of(std::string_view schema_bytes);
std::string hex64(std::uint64_t v);
// Strict decimal; nullopt on anything else (sign, spaces, overflow, empty).
std::optional<std::uint64_t> parse_u64(std::string_view s);

}  // namespace shmbus::bridge
