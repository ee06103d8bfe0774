// Shared-memory layout of a service region and the headers a service puts in front of each
// request and response. A service is two ordinary topics (requests: clients publish, servers
// subscribe; responses: servers publish, clients subscribe) plus this small region, which holds
// what topics lack: who serves, who calls, and one call word per call that the servers race
// for, so that each request is served by exactly one server (docs/services.md).
//
// Everything here lives in memory other processes map: standard-layout, fixed-width,
// pointer-free, pinned by static_asserts. Bump kServiceLayoutVersion on ANY change.
//
// Region: ServiceHeader, then max_servers ServerRows, then max_clients ClientRows, then
// max_clients * calls_per_client CallWords (client c's calls at [c * calls_per_client, ...)).
//
// Protocol (cite as "service_layout.hpp rule N"):
//   1. Rows. A free row (state kRowFree) is taken by CAS to kRowClaiming (acquire); its
//      taker writes pid, owner and bumps generation, then stores kRowActive (release, paired
//      with the acquire load of state by readers of pid/owner/generation). Its owner frees it
//      by storing kRowFree (release). A row whose owner is provably dead (owner_liveness) may
//      be freed by anyone, by CAS kRowActive -> kRowFree, so that only one reclaimer wins.
//      A row's first cache line changes only when the row is taken or freed: every call
//      reads it. What its owner writes per call lives on the row's second line.
//   2. Calls. A CallWord is (claimant << 48) | (server_generation << 32) | call_generation.
//      Call generations come from the client row's next_generation, so a reused row or call
//      index never matches a stale request or response. A call goes one of two ways:
//      a. Addressed (the client named a server, or only one server row was active when it
//         sent): the request names the server's row and generation, only that server serves
//         it, and nobody writes the call word unless the client drops the call, storing
//         (kClaimEnded, 0, gen). The server sees call_cancelled when the word says so or
//         when the client's row is no longer the one that sent (freed, reclaimed, reused).
//      b. Shared (several servers active): the client stores (kClaimPending, 0, gen) before
//         it publishes the request naming gen; a server serves the request only after it
//         CASes that exact word to (its row + 1, its row's generation, gen): exactly one
//         server wins. The client ends the call (last response taken, or the call dropped)
//         by storing (kClaimEnded, 0, gen); a server then sees call_cancelled.
//   3. Liveness. A client waiting on a call checks its server's row (the addressed one, or
//      the claimant): freed, another generation, or its owner dead means server_gone. A
//      pending shared call with no live server that could take it is server_gone too.
//   4. Server rows changed. Whoever changes a server row's state (taken, freed, reclaimed)
//      then bumps the header's server_rows_changed (release). A client caches which server
//      its unaddressed calls go to (rule 2: the only active one, or shared) with the count it
//      read (acquire) before looking at the rows, and looks again only when the count moved.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "layout.hpp"

namespace shmbus::detail {

inline constexpr std::uint64_t kServiceMagic = 0x3156524D42534853ULL;  // "SHSBMRV1"
inline constexpr std::uint32_t kServiceLayoutVersion = 3;  // 2: rows of two lines, addressed calls; 3: server_rows_changed
inline constexpr std::size_t kServiceNameMax = 191;  // leaves room for the topic suffixes
inline constexpr std::uint32_t kMaxServers = 1000;   // claimant field: row + 1 < kClaimEnded
inline constexpr std::uint32_t kMaxServiceClients = 4096;
inline constexpr std::uint32_t kMaxCallsPerClient = 4096;

inline constexpr std::uint32_t kServiceAnonymous = 1;  // a sealed memfd, not a file

struct ServiceHeader {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t header_size;        // sizeof(ServiceHeader)
  std::uint64_t region_size;
  std::uint32_t max_servers;
  std::uint32_t max_clients;
  std::uint32_t calls_per_client;
  std::uint32_t flags;              // kServiceAnonymous or 0
  std::uint64_t request_type_id;    // Cap'n Proto struct ids; 0 = raw bytes
  std::uint64_t response_type_id;
  char name[kServiceNameMax + 1];   // NUL-terminated
  std::atomic<std::uint32_t> server_rows_changed;  // rule 4; read by every send, written rarely
  std::uint32_t reserved;
};
static_assert(std::is_standard_layout_v<ServiceHeader>);
static_assert(sizeof(ServiceHeader) == 256);
static_assert(offsetof(ServiceHeader, name) == 56);
static_assert(offsetof(ServiceHeader, server_rows_changed) == 248);

static_assert(std::atomic<std::uint32_t>::is_always_lock_free && std::atomic<std::int32_t>::is_always_lock_free &&
              std::atomic<std::uint64_t>::is_always_lock_free);

inline constexpr std::uint32_t kRowFree = 0;
inline constexpr std::uint32_t kRowClaiming = 1;
inline constexpr std::uint32_t kRowActive = 2;

struct ServerRow {
  // First line: written only when the row is taken or freed (rule 1); clients read it per call.
  std::atomic<std::uint32_t> state;       // kRow*; rule 1
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint32_t> generation;  // bumped by each new owner
  std::uint32_t reserved;
  OwnerIdentity owner;                    // of pid, against pid reuse
  std::uint8_t pad[kCacheLine - 32];
  // Second line: the owner's per-call writes.
  std::atomic<std::uint64_t> claimed;     // requests this row's servers served (tools)
  std::uint8_t pad2[kCacheLine - 8];
};
static_assert(std::is_standard_layout_v<ServerRow>);
static_assert(sizeof(ServerRow) == 2 * kCacheLine);
static_assert(offsetof(ServerRow, owner) == 16 && offsetof(ServerRow, claimed) == kCacheLine);

struct ClientRow {
  // First line: as ServerRow's; servers read it per response (rule 2a).
  std::atomic<std::uint32_t> state;            // kRow*; rule 1
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint32_t> generation;
  std::uint32_t reserved;
  OwnerIdentity owner;
  std::uint8_t pad[kCacheLine - 32];
  // Second line: the owner's per-call writes.
  std::atomic<std::uint32_t> next_generation;  // call generations; only the owner writes
  std::atomic<std::uint32_t> calls_in_flight;  // only the owner writes (tools)
  std::uint8_t pad2[kCacheLine - 8];
};
static_assert(std::is_standard_layout_v<ClientRow>);
static_assert(sizeof(ClientRow) == 2 * kCacheLine);
static_assert(offsetof(ClientRow, owner) == 16 && offsetof(ClientRow, next_generation) == kCacheLine);

using CallWord = std::atomic<std::uint64_t>;
static_assert(sizeof(CallWord) == 8 && CallWord::is_always_lock_free);

inline constexpr std::uint64_t kClaimPending = 0;
inline constexpr std::uint64_t kClaimEnded = 0xFFFF;

constexpr std::uint64_t call_word(std::uint64_t claimant, std::uint32_t server_generation, std::uint32_t gen) noexcept {
  return (claimant << 48) | (static_cast<std::uint64_t>(server_generation & 0xFFFF) << 32) | gen;
}
constexpr std::uint64_t claimant_of(std::uint64_t word) noexcept { return word >> 48; }
constexpr std::uint32_t server_generation_of(std::uint64_t word) noexcept { return static_cast<std::uint32_t>(word >> 32) & 0xFFFF; }
constexpr std::uint32_t generation_of(std::uint64_t word) noexcept { return static_cast<std::uint32_t>(word); }

// In front of every request's payload (the request topic's messages).
inline constexpr std::uint32_t kAnyServerTarget = 0;
struct RequestHeader {
  std::uint32_t magic;        // kRequestMagic
  std::uint32_t client;       // client row
  std::uint32_t call;         // call index within the client's calls
  std::uint32_t generation;   // the call's generation (rule 2)
  std::uint32_t target;       // kAnyServerTarget (a shared call, rule 2b), or server row + 1 (2a)
  std::uint32_t target_generation;  // an addressed call's server row generation, low 16 bits
  std::uint32_t client_generation;  // the client row's generation when it sent
  std::uint32_t reserved;
};
static_assert(std::is_trivially_copyable_v<RequestHeader> && sizeof(RequestHeader) == 32);

// In front of every response's payload (the response topic's messages).
inline constexpr std::uint32_t kResponseLast = 1;  // the server ends the call's stream with it
struct ResponseHeader {
  std::uint32_t magic;        // kResponseMagic
  std::uint32_t client;
  std::uint32_t call;
  std::uint32_t generation;
  std::uint32_t flags;        // kResponse*
  std::uint32_t server;       // server row
  std::uint64_t reserved;
};
static_assert(std::is_trivially_copyable_v<ResponseHeader> && sizeof(ResponseHeader) == 32);

inline constexpr std::uint32_t kRequestMagic = 0x51525653;   // "SVRQ"
inline constexpr std::uint32_t kResponseMagic = 0x50525653;  // "SVRP"

}  // namespace shmbus::detail
