#include "message_codec.hpp"

namespace shmbus::cli {

const char* policy_name(SlowSubscriberPolicy p) {
  switch (p) {
    case SlowSubscriberPolicy::block: return "block";
    case SlowSubscriberPolicy::drop_oldest: return "drop_oldest";
    case SlowSubscriberPolicy::fail_publish: return "fail_publish";
  }
  return "?";
}

}  // namespace shmbus::cli
