// Publishers and loans of the C API: loan -> write at the pointer -> publish. Loan and
// publish are as cheap as in C++ but for the handle, which comes from a per-thread spare.
#include <cstring>

#include "handles.hpp"

using namespace shmbus;
using namespace shmbus::capi;

namespace {

shmbus_errc hand_out(shmbus_publisher_t** out, RawPublisher pub, const char* where) {
  auto* h = new (std::nothrow) shmbus_publisher{Tag::publisher, std::move(pub)};
  if (h == nullptr) return fail(where, shmbus_errc_system_error, "out of memory");
  *out = h;
  return shmbus_errc_ok;
}

// A failed loan says why in the library's words: sizes, and for pool_exhausted who holds the
// chunks, on one line. Formatting allocates, but only on this failure path.
shmbus_errc loan_failed(const shmbus_publisher* p, Errc code, std::size_t size) noexcept {
  static constexpr const char* where = "shmbus_publisher_loan";
  try {
    std::string why = p->pub.explain(code, size);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    for (std::size_t nl; (nl = why.find('\n')) != std::string::npos;) {
      std::size_t next = why.find_first_not_of(' ', nl + 1);
      why.replace(nl, (next == std::string::npos ? why.size() : next) - nl, "; ");
    }
    return fail(where, to_c(code), why.c_str());
  } catch (...) {
    return fail(where, code);
  }
}

}  // namespace

extern "C" {

shmbus_errc shmbus_publisher_create(shmbus_topic_t* topic, shmbus_publisher_t** out) {
  static constexpr const char* where = "shmbus_publisher_create";
  if (!alive(topic, Tag::topic)) return fail_misuse(where, "NULL or invalid topic handle");
  if (out == nullptr) return fail_misuse(where, "the publisher output pointer is NULL");
  return guarded(where, [&] { return hand_out(out, RawPublisher(topic->topic), where); });
}

shmbus_errc shmbus_client_publisher(shmbus_client_t* client, shmbus_topic_t* topic, shmbus_publisher_t** out) {
  static constexpr const char* where = "shmbus_client_publisher";
  if (!alive(client, Tag::client)) return fail_misuse(where, "NULL or invalid client handle");
  if (!alive(topic, Tag::topic)) return fail_misuse(where, "NULL or invalid topic handle");
  if (out == nullptr) return fail_misuse(where, "the publisher output pointer is NULL");
  return guarded(where, [&] { return hand_out(out, client->client.publisher(topic->topic), where); });
}

void shmbus_publisher_free(shmbus_publisher_t** publisher) {
  if (publisher == nullptr || !alive(*publisher, Tag::publisher)) return;
  (*publisher)->tag = Tag::dead;
  delete *publisher;
  *publisher = nullptr;
}

shmbus_errc shmbus_publisher_loan(shmbus_publisher_t* publisher, size_t size, shmbus_loan_t** loan, void** data,
                                  size_t* capacity) {
  static constexpr const char* where = "shmbus_publisher_loan";
  if (!alive(publisher, Tag::publisher)) [[unlikely]]
    return fail_misuse(where, "NULL or invalid publisher handle");
  if (loan == nullptr || data == nullptr) [[unlikely]]
    return fail_misuse(where, "the loan or data output pointer is NULL");
  shmbus_loan* h = new_loan_handle();
  if (h == nullptr) [[unlikely]]
    return fail(where, shmbus_errc_system_error, "out of memory");
  Result<RawLoan> r = publisher->pub.loan(size);
  if (!r) [[unlikely]] {
    recycle(h);
    return loan_failed(publisher, r.code(), size);
  }
  new (&h->loan) RawLoan(std::move(r.value()));  // over an empty loan (new, or recycled)
  std::span<std::byte> bytes = h->loan.data();
  *loan = h;
  *data = bytes.data();
  if (capacity != nullptr) *capacity = bytes.size();
  return shmbus_errc_ok;
}

shmbus_errc shmbus_publisher_publish(shmbus_publisher_t* publisher, shmbus_loan_t** loan, size_t used) {
  static constexpr const char* where = "shmbus_publisher_publish";
  if (!alive(publisher, Tag::publisher)) [[unlikely]]
    return fail_misuse(where, "NULL or invalid publisher handle");
  if (loan == nullptr) [[unlikely]]
    return fail_misuse(where, "the loan pointer is NULL");
  shmbus_loan* h = *loan;
  if (!alive(h, Tag::loan)) [[unlikely]]
    return fail_misuse(where, "NULL or invalid loan handle (a loan is published once)");
  if (used == SHMBUS_WHOLE_LOAN) used = h->loan.data().size();
  if (used > h->loan.data().size()) [[unlikely]]
    return fail_misuse(where, "`used` is larger than the loan");
  Status st = publisher->pub.publish(std::move(h->loan), used);
  if (h->loan.valid()) [[unlikely]]  // not taken: a loan of another publisher
    return fail_misuse(where, "the loan belongs to another publisher");
  recycle(h);
  *loan = nullptr;
  if (!st) [[unlikely]]
    return fail(where, st.code());
  return shmbus_errc_ok;
}

shmbus_errc shmbus_publisher_publish_copy(shmbus_publisher_t* publisher, const void* bytes, size_t size) {
  static constexpr const char* where = "shmbus_publisher_publish_copy";
  if (!alive(publisher, Tag::publisher)) return fail_misuse(where, "NULL or invalid publisher handle");
  if (bytes == nullptr && size != 0) return fail_misuse(where, "bytes is NULL");
  Result<RawLoan> r = publisher->pub.loan(size);
  if (!r) return loan_failed(publisher, r.code(), size);
  if (size != 0) std::memcpy(r->data().data(), bytes, size);
  Status st = publisher->pub.publish(std::move(*r), size);
  return st ? shmbus_errc_ok : fail(where, st.code());
}

void shmbus_loan_free(shmbus_loan_t** loan) {
  if (loan == nullptr || !alive(*loan, Tag::loan)) return;
  (*loan)->loan = RawLoan{};  // gives the chunk back
  recycle(*loan);
  *loan = nullptr;
}

shmbus_errc shmbus_loan_data(const shmbus_loan_t* loan, void** data, size_t* capacity) {
  static constexpr const char* where = "shmbus_loan_data";
  if (!alive(loan, Tag::loan)) return fail_misuse(where, "NULL or invalid loan handle");
  if (data == nullptr) return fail_misuse(where, "the data output pointer is NULL");
  *data = loan->loan.data().data();
  if (capacity != nullptr) *capacity = loan->loan.data().size();
  return shmbus_errc_ok;
}

}  // extern "C"
