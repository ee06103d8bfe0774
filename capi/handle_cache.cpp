// Per-thread spares of loan and sample handles: the C API hands out a heap object per message,
// and a steady loop should not pay the allocator for it (the C++ API allocates nothing there).
// One spare of each per thread is enough for loan-publish and take-release loops; a handle
// given back while the thread has a spare is deleted.
//
// The spares are plain thread_local pointers, so reaching them is one %fs-relative access; the
// object that deletes them at thread exit has a destructor, which would make every access go
// through a TLS wrapper call, so it is touched only when a thread parks its first spare.
#include "handles.hpp"

namespace shmbus::capi {
namespace {

thread_local shmbus_loan* spare_loan = nullptr;
thread_local shmbus_sample* spare_sample = nullptr;
thread_local bool cleanup_armed = false;

struct SpareCleanup {
  ~SpareCleanup() {
    delete spare_loan;
    spare_loan = nullptr;
    delete spare_sample;
    spare_sample = nullptr;
  }
};

[[gnu::noinline]] void arm_cleanup() noexcept {
  static thread_local SpareCleanup cleanup;
  (void)cleanup;
  cleanup_armed = true;
}

template <typename H>
H* take_spare(H*& spare, Tag tag) noexcept {
  H* h = spare;
  if (h != nullptr) [[likely]] {
    spare = nullptr;
    h->tag = tag;
    return h;
  }
  return new (std::nothrow) H{};
}

template <typename H>
void give_back(H*& spare, H* h) noexcept {
  h->tag = Tag::dead;  // a copy of the caller's pointer now reads as freed
  if (spare == nullptr) [[likely]] {
    if (!cleanup_armed) [[unlikely]]
      arm_cleanup();
    spare = h;
  } else {
    delete h;
  }
}

}  // namespace

shmbus_loan* new_loan_handle() noexcept { return take_spare(spare_loan, Tag::loan); }
void recycle(shmbus_loan* h) noexcept { give_back(spare_loan, h); }
shmbus_sample* new_sample_handle() noexcept { return take_spare(spare_sample, Tag::sample); }
void recycle(shmbus_sample* h) noexcept { give_back(spare_sample, h); }

}  // namespace shmbus::capi
