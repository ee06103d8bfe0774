// Access control: a uid the rules do not allow is refused with an error naming the rule; and
// the rule matcher itself.
#include "access.hpp"
#include "daemon_harness.hpp"
#include "other_uid.hpp"
#include "shmbus/client.hpp"

namespace shmbusd::test {
namespace {

TEST(AccessRules, FirstMatchingRuleDecidesAndIsNamed) {
  AccessRules rules;
  rules.daemon_uid = 1000;
  rules.source = "test.toml";
  rules.rules.push_back({"cam/*", {parse_principal("uid:1001")}, {parse_principal("*")}, "rule #1 (topic \"cam/*\")"});
  PeerIdentity alice{1001, 1001, {}}, bob{1002, 1002, {}}, daemon_user{1000, 1000, {}};
  EXPECT_EQ(rules.check("cam/front", true, alice), "");
  EXPECT_NE(rules.check("cam/front", true, bob).find("rule #1"), std::string::npos);
  EXPECT_EQ(rules.check("cam/front", false, bob), "");
  EXPECT_NE(rules.check("other", false, bob).find("default rule"), std::string::npos);
  EXPECT_EQ(rules.check("other", true, daemon_user), "");
  EXPECT_EQ(rules.check("other", true, PeerIdentity{0, 0, {}}), "");
  rules.rules.push_back({"grp", {parse_principal("gid:55")}, {}, "rule #2"});
  EXPECT_EQ(rules.check("grp", true, PeerIdentity{1002, 1002, {55}}), "") << "supplementary groups count";
}

TEST(AccessRules, UidNotAllowedIsRefusedNamingTheRule) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch the client to uid 65534 (running as uid " << geteuid() << ")";
  auto dir = make_temp_dir("access");
  chmod(dir.c_str(), 0755);  // let uid 65534 reach the socket; the rules decide
  std::string config = (dir / "shmbusd.toml").string();
  {
    std::ofstream f(config);
    f << "socket_dir_mode = 0o755\n[[access]]\ntopic = \"secret/*\"\npublish = [\"uid:0\"]\nsubscribe = [\"uid:0\"]\n";
  }
  DaemonProcess d(dir / "run", {"--config", config});
  d.start();
  const std::string what = as_nobody([&] { shmbus::Client(client_at(d)).open_topic("secret/plans", shmbus::Role::subscriber); });
  EXPECT_NE(what.find("uid 65534"), std::string::npos) << what;
  EXPECT_NE(what.find("refused by rule #1"), std::string::npos) << what;
  // Root, allowed by the rule, still gets in.
  shmbus::ClientOptions o;
  o.socket = d.socket();
  shmbus::Client client(o);
  EXPECT_NO_THROW(client.open_topic("secret/plans", shmbus::Role::subscriber));
}

}  // namespace
}  // namespace shmbusd::test
