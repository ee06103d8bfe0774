// shmbusd's /metrics endpoint (metrics_endpoint.hpp), on the real binary: off unless a port is
// configured, bound to the loopback addresses only, answering what promtool accepts, and a
// garbage or oversized request gets 400 while the daemon keeps serving scrapes and clients.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "daemon_harness.hpp"
#include "shmbus/shmbus.hpp"

namespace shmbusd::test {
namespace {

constexpr const char* kPromtool = "/usr/bin/promtool";

// A TCP port free now on 127.0.0.1 (the kernel's choice; released for the daemon to take).
std::uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// Sends `request` to 127.0.0.1:port and returns everything the server wrote until it closed
// ("" when the connection failed).
std::string http_exchange(std::uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    (void)!write(fd, request.data(), request.size());
    char buf[4096];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  return out;
}

std::string body_of(const std::string& response) {
  std::size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

// The local addresses of the TCP sockets `pid` listens on, as /proc/net/tcp{,6} print them
// ("0100007F:1F90"), found through the socket inodes among its fds.
std::set<std::string> listening_addresses(pid_t pid) {
  std::set<std::string> inodes;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (target.starts_with("socket:[")) inodes.insert(target.substr(8, target.size() - 9));
  }
  std::set<std::string> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state == "0A" && inodes.count(inode)) out.insert(local);
    }
  }
  return out;
}

TEST(MetricsEndpoint, NothingListensUnlessAPortIsConfigured) {
  DaemonProcess daemon(make_temp_dir("metrics-off"));
  daemon.start();
  EXPECT_TRUE(listening_addresses(daemon.pid()).empty());
  daemon.kill_now(SIGTERM);
  std::filesystem::remove_all(daemon.dir());
}

TEST(MetricsEndpoint, ListensOnLoopbackOnlyAndServesWhatPromtoolAccepts) {
  const std::uint16_t port = free_port();
  DaemonProcess daemon(make_temp_dir("metrics-on"), {"--metrics-port", std::to_string(port)});
  daemon.start();
  char hex[8];
  std::snprintf(hex, sizeof hex, "%04X", port);
  std::set<std::string> addresses = listening_addresses(daemon.pid());
  ASSERT_FALSE(addresses.empty());
  for (const std::string& a : addresses) {
    EXPECT_TRUE(a == std::string("0100007F:") + hex || a == std::string("00000000000000000000000001000000:") + hex)
        << a << " is not a loopback address";
  }

  shmbus::ClientOptions o;
  o.socket = daemon.socket();
  shmbus::Client client(o);
  shmbus::TopicConfig c;
  c.name = "scraped";
  c.size_classes = {{64, 32}};
  c.queue_depth = 8;
  shmbus::Topic topic = client.open_topic(c, shmbus::Role::publisher);
  shmbus::RawPublisher pub(topic);
  client.register_publisher(pub);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(pub.publish_copy(std::vector<std::byte>(10)).ok());
  // The sweep hands new topics to the endpoint within 500 ms.
  std::string response;
  for (int i = 0; i < 100 && body_of(response).find("topic=\"scraped\"") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    response = http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
  }
  ASSERT_TRUE(response.starts_with("HTTP/1.1 200")) << response;
  EXPECT_NE(response.find("text/plain; version=0.0.4"), std::string::npos);
  const std::string body = body_of(response);
  EXPECT_NE(body.find("shmbus_publisher_published_messages_total{bus=\"default\",topic=\"scraped\",publisher=\"0\",pid=\"" +
                      std::to_string(getpid()) + "\"} 5\n"),
            std::string::npos)
      << body;
  std::filesystem::path file = daemon.dir() / "scrape.prom";
  std::ofstream(file) << body;
  EXPECT_EQ(std::system((std::string(kPromtool) + " check metrics < " + file.string() + " >/dev/null 2>&1").c_str()), 0);
  daemon.kill_now(SIGTERM);
  std::filesystem::remove_all(daemon.dir());
}

TEST(MetricsEndpoint, GarbageGets400AndTheDaemonKeepsServing) {
  const std::uint16_t port = free_port();
  DaemonProcess daemon(make_temp_dir("metrics-bad"), {"--metrics-port", std::to_string(port)});
  daemon.start();
  EXPECT_TRUE(http_exchange(port, std::string("\x16\x03\x01garbage\r\n\r\n", 14)).starts_with("HTTP/1.1 400")) ;
  EXPECT_TRUE(http_exchange(port, "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n").starts_with("HTTP/1.1 400"));
  EXPECT_TRUE(http_exchange(port, "GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
  EXPECT_TRUE(http_exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").starts_with("HTTP/1.1 405"));
  // A scraper that connects and says nothing holds one connection, not the endpoint.
  int idle = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(idle, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_TRUE(http_exchange(port, "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
  close(idle);
  EXPECT_TRUE(can_connect(daemon.socket()));
  int status = 0;
  EXPECT_EQ(waitpid(daemon.pid(), &status, WNOHANG), 0) << "the daemon exited";
  daemon.kill_now(SIGTERM);
  std::filesystem::remove_all(daemon.dir());
}

}  // namespace
}  // namespace shmbusd::test
