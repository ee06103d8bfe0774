// Per-thread spares of loan and sample handles: the C API hands out a heap object per message,
// and a steady loop should not pay the allocator for it (the C++ API allocates nothing there).
// One spare of each per thread is enough for loan-publish and take-release loops; a handle
// given back while the thread has a spare is deleted.
#include "handles.hpp"

namespace shmbus::capi {
namespace {

struct Spares {
  shmbus_loan* loan = nullptr;
  shmbus_sample* sample = nullptr;
  ~Spares() {
    delete loan;
    delete sample;
  }
};
thread_local Spares spares;

template <typename H>
H* take_spare(H*& spare, Tag tag) noexcept {
  H* h = spare;
  if (h != nullptr) {
    spare = nullptr;
    h->tag = tag;
    return h;
  }
  return new (std::nothrow) H{};
}

template <typename H>
void give_back(H*& spare, H* h) noexcept {
  h->tag = Tag::dead;  // a copy of the caller's pointer now reads as freed
  if (spare == nullptr) {
    spare = h;
  } else {
    delete h;
  }
}

}  // namespace

shmbus_loan* new_loan_handle() noexcept { return take_spare(spares.loan, Tag::loan); }
void recycle(shmbus_loan* h) noexcept { give_back(spares.loan, h); }
shmbus_sample* new_sample_handle() noexcept { return take_spare(spares.sample, Tag::sample); }
void recycle(shmbus_sample* h) noexcept { give_back(spares.sample, h); }

}  // namespace shmbus::capi
