// shmbus: zero-copy shared-memory publish/subscribe. Include this header for the whole API.
#pragma once

#include "shmbus/config.hpp"
#include "shmbus/error.hpp"
#include "shmbus/raw.hpp"
#include "shmbus/topic.hpp"
#include "shmbus/typed.hpp"
#include "shmbus/cow_view.hpp"
#include "shmbus/snapshot.hpp"
#include "shmbus/service.hpp"
