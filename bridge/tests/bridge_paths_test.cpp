// Paths the round-trip tests do not take: a typed message of several Cap'n Proto segments
// crossing intact, and NATS over TLS with a certificate the test makes (openssl).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <cstring>

#include "bridge_harness.hpp"
#include "shmbus/shmbus.hpp"
#include "test_messages.capnp.h"

namespace shmbus::bridge::test {
namespace {

TEST(BridgePaths, ATypedMessageOfSeveralSegmentsCrossesIntact) {
  BridgedBuses ab("blobs/*", "size_classes = [[65536, 64]]\n");
  // 4 KiB chunks: four 3000-byte parts cannot share one, so the message grows into several.
  TopicConfig cfg = typed_topic<shmbus::test::Blob>("blobs/x");
  cfg.size_classes = {{4096, 1024}};
  cfg.max_message_size = 64 * 1024;
  Topic ta = ab.ca.open_topic(cfg, Role::publisher);
  Publisher<shmbus::test::Blob> pub(ta);
  ab.ca.register_publisher(pub.raw());
  Subscriber<shmbus::test::Blob> local(ab.ca.open_existing_topic("blobs/x", Role::subscriber));
  ab.ca.register_subscriber(local.raw());
  auto publish = [&](char tag) {
    auto loan = pub.loan();
    ASSERT_TRUE(loan.ok()) << loan.status().name();
    auto parts = loan.init().initParts(4);
    for (unsigned i = 0; i < 4; ++i) {
      auto d = parts.init(i, 3000 + i);
      for (unsigned k = 0; k < d.size(); ++k) d[k] = static_cast<kj::byte>(tag + i + k % 7);
    }
    ASSERT_TRUE(pub.publish(loan).ok());
  };
  auto intact = [](capnp::List<capnp::Data>::Reader parts, char tag) {
    if (parts.size() != 4) return false;
    for (unsigned i = 0; i < 4; ++i) {
      capnp::Data::Reader d = parts[i];  // once: every parts[i] counts against the traversal limit
      if (d.size() != 3000 + i) return false;
      for (unsigned k = 0; k < d.size(); ++k) {
        if (d[k] != static_cast<kj::byte>(tag + i + k % 7)) return false;
      }
    }
    return true;
  };
  // Until bus b has the topic (bridge a found it, bridge b created it with the schema).
  ASSERT_TRUE(resend_until([&] { publish('w'); }, [&] { return bus_has_topic(ab.cb, "blobs/x"); })) << ab.logs();
  // The message is several segments where it is published.
  auto mine = local.take_wait(std::chrono::seconds(2));
  ASSERT_TRUE(mine) << mine.name();
  EXPECT_GT(mine->segment_count(), 1u);
  Subscriber<shmbus::test::Blob> far(ab.cb.open_existing_topic("blobs/x", Role::subscriber));
  ab.cb.register_subscriber(far.raw());
  for (char tag : {'a', 'b', 'c'}) publish(tag);
  for (char tag : {'a', 'b', 'c'}) {
    Result<Sample<shmbus::test::Blob>> s = far.take_wait(std::chrono::seconds(10));
    while (s && s->root().getParts().size() == 4 && s->root().getParts()[0].size() == 3000 && s->root().getParts()[0][0] == 'w') {
      s = far.take_wait(std::chrono::seconds(10));  // a late warm-up message
    }
    ASSERT_TRUE(s) << s.name() << ab.bridge_b.status().dump() << ab.bridge_b.log();
    EXPECT_TRUE(intact(s->root().getParts(), tag)) << "message '" << tag << "' changed on the way";
  }
  EXPECT_EQ(ab.bridge_b.counter("blobs/x", "malformed/garbage"), 0u);
  EXPECT_EQ(ab.bridge_b.counter("blobs/x", "malformed/bad_headers"), 0u);
}

// A CA, and a server certificate for 127.0.0.1 it signed, in `dir`; "" or why not.
std::string make_certificates(const std::filesystem::path& dir) {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0) return "openssl is not installed";
  std::ofstream(dir / "san.ext") << "subjectAltName=IP:127.0.0.1\n";
  const std::string d = dir.string();
  const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string cmd = "cd " + d + " && openssl req -x509" + key + " -keyout ca.key -out ca.pem -days 1 -subj /CN=shmbus-test-ca" +
                          " && openssl req" + key + " -keyout server.key -out server.csr -subj /CN=127.0.0.1" +
                          " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1" +
                          " -extfile san.ext";
  if (std::system((cmd + " >openssl.log 2>&1").c_str()) != 0) return "openssl could not make a certificate: " + shmbusd::test::slurp(dir / "openssl.log");
  return "";
}

TEST(BridgePaths, MessagesCrossOverTlsAndABridgeThatDoesNotTrustTheServerStaysOff) {
  const std::filesystem::path dir = shmbusd::test::make_temp_dir("bridge-tls");
  struct Cleanup {
    std::filesystem::path d;
    ~Cleanup() { std::error_code ec; std::filesystem::remove_all(d, ec); }
  } cleanup{dir};
  if (std::string why = make_certificates(dir); !why.empty()) GTEST_SKIP() << why;
  const std::string tls = "tls {\n  cert_file: \"" + (dir / "server.pem").string() + "\"\n  key_file: \"" + (dir / "server.key").string() + "\"\n}";
  const std::string trust = "tls = true\ntls_ca = \"" + (dir / "ca.pem").string() + "\"\n";
  BridgedBuses ab("secure/*", "", tls, trust);
  TopicConfig cfg;
  cfg.name = "secure/x";
  cfg.size_classes = {{256, 64}};
  RawPublisher pub = ab.ca.publisher(ab.ca.open_topic(cfg, Role::publisher));
  RawSubscriber sub = ab.cb.subscriber(ab.cb.open_topic(cfg, Role::subscriber));
  const std::string text = "over tls";
  ASSERT_TRUE(resend_until([&] { (void)pub.publish_copy(std::as_bytes(std::span(text))); },
                           [&] { return ab.bridge_b.counter("secure/x", "imported") > 0; })) << ab.logs();
  auto s = sub.take_wait(std::chrono::seconds(2));
  ASSERT_TRUE(s) << s.name();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(s->data().data()), s->data().size()), text);
  EXPECT_TRUE(ab.bridge_a.status()["nats"]["connected"].get<bool>());
  // Without the CA the server's certificate is not trusted: the bridge runs, disconnected.
  Bus c("c");
  BridgeProcess untrusting(c, ab.nats, "busC", "tls = true\n[[import]]\ntopics = \"secure/*\"\n");
  ASSERT_TRUE(eventually([&] { return !untrusting.status().is_discarded(); })) << untrusting.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(untrusting.status()["nats"]["connected"].get<bool>()) << untrusting.log();
  EXPECT_EQ(untrusting.counter("secure/x", "imported"), 0u);
  // Still running and still trying (cnats 3.4's own retry closed such a connection for good,
  // and the bridge exited on its first subscribe: nats_engine.cpp).
  EXPECT_EQ(waitpid(untrusting.pid(), nullptr, WNOHANG), 0) << untrusting.log();
  EXPECT_NE(untrusting.log().find("NATS: cannot connect yet"), std::string::npos) << untrusting.log();
  EXPECT_EQ(untrusting.log().find("Connection Closed"), std::string::npos) << untrusting.log();
}

}  // namespace
}  // namespace shmbus::bridge::test
