#include "shmbus/cow_view.hpp"

#include <sys/mman.h>

#include "layout.hpp"
#include "sigbus_guard.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

namespace shmbus {

Result<CowView> CowView::from(RawSample&& sample) noexcept {
  if (!sample.valid()) return Errc::misuse;
  detail::TopicMap& m = detail::TopicAccess::map(sample.topic());
  if (m.unusable()) return Errc::region_lost;
  const std::byte* payload = sample.data().data();
  // The payload pool mapping the sample was read through: a sealed memfd of its publisher (a
  // private writable mapping of it is allowed, docs/linux-facts.md §3), or the region file itself.
  std::shared_ptr<detail::PoolMapping> pool = m.mapping_containing(payload);
  if (!pool) return Errc::system_error;
  // The sample's extent must lie in its pool mapping (its size came from shared memory).
  if (sample.data().size() > pool->size - static_cast<std::size_t>(payload - pool->base)) return Errc::malformed_message;
  std::size_t offset = static_cast<std::size_t>(payload - pool->base) + pool->file_offset;
  std::size_t first_page = offset / detail::kPageSize * detail::kPageSize;
  std::size_t end = detail::round_up(offset + std::max<std::size_t>(sample.data().size(), 1), detail::kPageSize);
  void* p = mmap(nullptr, end - first_page, PROT_READ | PROT_WRITE, MAP_PRIVATE, pool->fd,
                 static_cast<off_t>(first_page));
  if (p == MAP_FAILED) return Errc::system_error;
  // A view of a file-backed region faults like the region itself if the file is truncated.
  try {
    detail::SigbusGuard::register_mapping(p, end - first_page, m.lost_flag());
  } catch (...) {
    munmap(p, end - first_page);
    return Errc::system_error;
  }
  CowView v;
  v.mapping_ = p;
  v.mapping_size_ = end - first_page;
  v.data_ = static_cast<std::byte*>(p) + (offset - first_page);
  v.size_ = sample.data().size();
  v.sample_ = std::move(sample);
  return Result<CowView>(std::move(v));
}

CowView::CowView(CowView&& o) noexcept
    : sample_(std::move(o.sample_)), mapping_(std::exchange(o.mapping_, nullptr)),
      mapping_size_(o.mapping_size_), data_(o.data_), size_(o.size_) {}

CowView& CowView::operator=(CowView&& o) noexcept {
  if (this != &o) {
    this->~CowView();
    new (this) CowView(std::move(o));
  }
  return *this;
}

CowView::~CowView() {
  if (mapping_ != nullptr) {
    detail::SigbusGuard::unregister_mapping(mapping_);
    munmap(mapping_, mapping_size_);
  }
  // sample_ then releases the chunk.
}

}  // namespace shmbus
