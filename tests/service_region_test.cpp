// The service region is validated on every open (service_layout.hpp): a foreign, damaged or
// newer region is refused with an error naming the file and the field; and a server's event
// fd wakes a poll loop when a request arrives.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "service/service_layout.hpp"
#include "service_test_support.hpp"
#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

// Overwrites `size` bytes at `offset` of the service region file with `bytes`.
void poke(const std::filesystem::path& file, std::size_t offset, const void* bytes, std::size_t size) {
  int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes, size, static_cast<off_t>(offset)), static_cast<ssize_t>(size));
  ::close(fd);
}

Errc open_code(const std::filesystem::path& dir, const std::string& name, std::string& what) {
  try {
    Service::open_files(dir, name);
    return Errc::ok;
  } catch (const Error& e) {
    what = e.what();
    return e.code();
  }
}

TEST(ServiceRegion, AForeignDamagedOrNewerServiceRegionIsRefusedNamingTheField) {
  TempDir dir("svc-region");
  ServiceConfig cfg = small_service("svc-region");
  { Service svc = Service::create(cfg, dir.region_options()); }
  const std::filesystem::path file = Service::region_file(dir.path(), cfg.name);
  std::string what;
  ASSERT_EQ(open_code(dir.path(), cfg.name, what), Errc::ok) << what;

  std::uint32_t version = detail::kServiceLayoutVersion + 1;
  poke(file, offsetof(detail::ServiceHeader, layout_version), &version, sizeof version);
  EXPECT_EQ(open_code(dir.path(), cfg.name, what), Errc::unknown_layout_version);
  EXPECT_NE(what.find(file.string()), std::string::npos) << what;
  version = detail::kServiceLayoutVersion;
  poke(file, offsetof(detail::ServiceHeader, layout_version), &version, sizeof version);

  std::uint32_t servers = 100000;
  poke(file, offsetof(detail::ServiceHeader, max_servers), &servers, sizeof servers);
  EXPECT_EQ(open_code(dir.path(), cfg.name, what), Errc::region_corrupt);
  EXPECT_NE(what.find("max_servers"), std::string::npos) << what;
  servers = 200;  // in range, but the tables (200 rows: 12.8 KiB) no longer fit the region
  poke(file, offsetof(detail::ServiceHeader, max_servers), &servers, sizeof servers);
  EXPECT_EQ(open_code(dir.path(), cfg.name, what), Errc::region_corrupt);
  EXPECT_NE(what.find("region_size"), std::string::npos) << what;
  servers = cfg.max_servers;
  poke(file, offsetof(detail::ServiceHeader, max_servers), &servers, sizeof servers);
  ASSERT_EQ(open_code(dir.path(), cfg.name, what), Errc::ok) << what;

  const std::uint64_t junk = 0x1234;
  poke(file, 0, &junk, sizeof junk);
  EXPECT_EQ(open_code(dir.path(), cfg.name, what), Errc::not_a_region);
}

TEST(ServiceRegion, BadConfigurationsAreRefusedNamingTheField) {
  ServiceConfig cfg = small_service("svc-badcfg");
  cfg.max_servers = 0;
  try {
    Service::create(cfg);
    FAIL() << "created a service without servers";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_config);
    EXPECT_NE(std::string(e.what()).find("max_servers"), std::string::npos) << e.what();
  }
  cfg = small_service("svc-badcfg");
  cfg.name = std::string(300, 'x');
  EXPECT_THROW(Service::create(cfg), Error);
}

TEST(ServiceRegion, AServersEventFdWakesAPollLoopWhenARequestArrives) {
  Service svc = Service::create(small_service("svc-eventfd"));
  ServiceServer server(svc);
  pollfd p{server.event_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 20), 0) << "nothing to take yet";
  Child caller = Child::spawn([&] {
    Service mine = reopen(svc);
    ServiceClient c(mine);
    Result<PendingCall> pc = call(c, Op::twice, 5);
    if (!pc) return int{kChildBadData};
    Result<ServiceResponse> r = pc->receive_wait(10s);
    return r.ok() && read_as<TestResponse>(r->data()).value == 10 ? int{kChildOk} : int{kChildBadData};
  });
  ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the event fd never woke";
  std::uint64_t n = 0;
  ASSERT_EQ(::read(p.fd, &n, sizeof n), static_cast<ssize_t>(sizeof n));
  Result<ServiceRequest> req = server.take();
  ASSERT_TRUE(req.ok()) << req.name();
  ASSERT_TRUE(respond_value(server, *req, 10, 0, true).ok());
  EXPECT_EQ(caller.wait(10s), 0);
}

}  // namespace
}  // namespace shmbus
