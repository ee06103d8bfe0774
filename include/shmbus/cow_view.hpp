// Private, writable, copy-on-write views of a message (MAP_PRIVATE of its chunk's pages).
//
// A subscriber turns a sample into a CowView to modify a message without anyone else seeing
// it: only the pages it writes are copied (by the kernel, on first write); every other
// process keeps reading the original in place. The view keeps the message's chunk out of the
// pool for as long as it lives (it inherits the sample's reference), which is what keeps its
// unwritten pages unchanged: MAP_PRIVATE pages nobody wrote still show later writes to the
// file (docs/linux-facts.md §4), so the chunk must not be reused under the view. A view therefore
// counts against the subscriber's max_held_per_subscriber.
//
// Payloads of chunks of 4 KiB and more are page-aligned, so a view copies pages of its own
// message only. Creating a view costs one mmap; writing costs one page fault per page.
#pragma once

#include <cstddef>
#include <span>

#include "shmbus/error.hpp"
#include "shmbus/raw.hpp"

namespace shmbus {

class CowView {
 public:
  // Consumes `sample`. Errors: system_error (mmap failed), region_lost.
  static Result<CowView> from(RawSample&& sample) noexcept;

  CowView(CowView&& other) noexcept;
  CowView& operator=(CowView&& other) noexcept;
  ~CowView();

  std::span<std::byte> data() const noexcept { return {data_, size_}; }
  std::uint64_t sequence() const noexcept { return sample_.sequence(); }

 private:
  CowView() = default;
  RawSample sample_;  // keeps the chunk referenced while the view lives
  void* mapping_ = nullptr;
  std::size_t mapping_size_ = 0;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace shmbus
