// Access rules of request/response services (docs/services.md): the `call` and `serve` rights
// decide who may use a service's request and response topics, a refusal names the rule, and
// topic rules never grant services.
#include "access.hpp"
#include "daemon_harness.hpp"
#include "other_uid.hpp"
#include "options.hpp"
#include "shmbus/client.hpp"
#include "shmbus/service.hpp"

namespace shmbusd::test {
namespace {

const std::string kRequests = shmbus::Service::request_topic_name("resize");
const std::string kResponses = shmbus::Service::response_topic_name("resize");

TEST(ServiceAccess, CallAndServeDecideTheServiceTopicsAndARefusalNamesTheRule) {
  auto dir = make_temp_dir("svc-rights");
  auto conf = dir / "shmbusd.toml";
  std::ofstream(conf) << "[[access]]\ntopic = \"service/resize\"\ncall = [\"uid:1001\"]\nserve = [\"uid:1002\"]\n"
                         "[[access]]\ntopic = \"*\"\npublish = [\"*\"]\nsubscribe = [\"*\"]\n";
  Options o;
  load_config_file(conf, o);
  PeerIdentity caller{1001, 1001, {}}, server{1002, 1002, {}}, stranger{1003, 1003, {}};
  // A caller publishes requests and takes responses; a server the reverse.
  EXPECT_EQ(o.rules.check(kRequests, Right::publish, caller), "");
  EXPECT_EQ(o.rules.check(kResponses, Right::subscribe, caller), "");
  EXPECT_EQ(o.rules.check(kRequests, Right::subscribe, server), "");
  EXPECT_EQ(o.rules.check(kResponses, Right::publish, server), "");
  std::string why = o.rules.check(kRequests, Right::subscribe, caller);
  EXPECT_NE(why.find("may not serve service 'resize'"), std::string::npos) << why;
  EXPECT_NE(why.find("rule #1"), std::string::npos) << why;
  EXPECT_NE(why.find("'serve' list"), std::string::npos) << why;
  why = o.rules.check(kResponses, Right::subscribe, stranger);
  EXPECT_NE(why.find("may not call service 'resize'"), std::string::npos) << why;
  // Without a create list, servers create the service's topics.
  EXPECT_EQ(o.rules.check(kRequests, Right::create, server), "");
  EXPECT_NE(o.rules.check(kRequests, Right::create, caller), "");
  // Ordinary topics still follow the topic rule.
  EXPECT_EQ(o.rules.check("telemetry", Right::publish, stranger), "");
  std::filesystem::remove_all(dir);
}

TEST(ServiceAccess, TopicRulesDoNotGrantServices) {
  AccessRules rules;
  rules.daemon_uid = 1000;
  rules.rules.push_back({"*", {parse_principal("*")}, {parse_principal("*")}, "rule #1 (topic \"*\")"});
  PeerIdentity anyone{1005, 1005, {}};
  EXPECT_EQ(rules.check("service-like-name", Right::publish, anyone), "");
  std::string why = rules.check(kRequests, Right::publish, anyone);
  EXPECT_NE(why.find("default rule"), std::string::npos) << why;
  EXPECT_EQ(rules.check(kRequests, Right::publish, PeerIdentity{0, 0, {}}), "") << "root may";
}

TEST(ServiceAccess, TheDaemonRefusesAServiceTopicToAUidWithoutTheRightNamingTheRule) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch the client to uid 65534";
  auto dir = make_temp_dir("svc-access");
  chmod(dir.c_str(), 0755);
  std::string config = (dir / "shmbusd.toml").string();
  std::ofstream(config) << "socket_dir_mode = 0o755\n[[access]]\ntopic = \"service/*\"\ncall = [\"uid:0\"]\n"
                           "serve = [\"uid:0\"]\n";
  DaemonProcess d(dir / "run", {"--config", config});
  d.start();
  const std::string what = as_nobody([&] { shmbus::Client(client_at(d)).open_topic(kRequests, shmbus::Role::publisher); });
  EXPECT_NE(what.find("may not call service 'resize'"), std::string::npos) << what;
  EXPECT_NE(what.find("rule #1"), std::string::npos) << what;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shmbusd::test
