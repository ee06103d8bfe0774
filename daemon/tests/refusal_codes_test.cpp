// Refusals carry a typed code (control.capnp RefusalCode) that the client maps to an Errc,
// keeping the daemon's message; and the create right in the rules.
#include "access.hpp"
#include "control/wire.hpp"
#include "daemon_harness.hpp"
#include "options.hpp"
#include "shmbus/client.hpp"

namespace shmbusd::test {
namespace {

using shmbus::control::RefusalCode;

TEST(RefusalCodes, EveryCodeSurvivesTheTextFormAndAnUnknownFormKeepsItsText) {
  auto enumerants = capnp::Schema::from<RefusalCode>().getEnumerants();
  ASSERT_GE(enumerants.size(), 8u);
  for (auto e : enumerants) {
    const auto code = static_cast<RefusalCode>(e.getOrdinal());
    kj::Exception sent = shmbus::wire::refusal(code, "topic 'a]' said [no]");
    for (std::string prefix : {"", "remote exception: "}) {
      shmbus::wire::Refusal got = shmbus::wire::read_refusal(prefix + sent.getDescription().cStr());
      EXPECT_EQ(got.code, code) << e.getProto().getName().cStr();
      EXPECT_EQ(got.message, "topic 'a]' said [no]");
    }
  }
  shmbus::wire::Refusal odd = shmbus::wire::read_refusal("remote exception: [notACode] something broke");
  EXPECT_EQ(odd.code, RefusalCode::UNSPECIFIED);
  EXPECT_EQ(odd.message, "[notACode] something broke");
  EXPECT_EQ(shmbus::wire::to_errc(RefusalCode::ACCESS_DENIED), shmbus::Errc::access_denied);
  EXPECT_EQ(shmbus::wire::to_errc(RefusalCode::NO_SUCH_TOPIC), shmbus::Errc::no_such_topic);
}

// Root too is bound by a rule that matches: "locked*" belongs to uid 4242 alone, and nobody may
// create "fixed*" topics.
TEST(RefusalCodes, TheDaemonsRefusalsArriveAsTheirErrcWithTheDaemonsMessage) {
  auto dir = make_temp_dir("refusals");
  auto conf = dir / "shmbusd.toml";
  std::ofstream(conf) << "[[access]]\ntopic = \"locked*\"\npublish = [\"uid:4242\"]\nsubscribe = [\"uid:4242\"]\n"
                         "[[access]]\ntopic = \"fixed*\"\npublish = [\"*\"]\nsubscribe = [\"*\"]\ncreate = []\n";
  DaemonProcess d(dir, {"--config", conf.string()});
  d.start();
  shmbus::Client client(client_at(d));
  auto code_of = [](auto&& f) -> std::pair<shmbus::Errc, std::string> {
    try {
      f();
    } catch (const shmbus::Error& e) {
      return {e.code(), e.what()};
    }
    return {shmbus::Errc::ok, ""};
  };

  auto [denied, denied_why] = code_of([&] { client.open_topic("locked/door", shmbus::Role::subscriber); });
  EXPECT_EQ(denied, shmbus::Errc::access_denied);
  EXPECT_EQ(denied_why, "opening topic 'locked/door': uid 0 gid 0 may not subscribe on topic 'locked/door': refused by "
                        "rule #1 (topic \"locked*\") at " + conf.string() +
                            ":1: its 'subscribe' list has neither uid 0 nor any of its groups");

  auto [no_create, no_create_why] = code_of([&] { client.open_topic("fixed/a", shmbus::Role::publisher); });
  EXPECT_EQ(no_create, shmbus::Errc::access_denied);
  EXPECT_NE(no_create_why.find("may not create topic 'fixed/a': refused by rule #2"), std::string::npos) << no_create_why;
  EXPECT_NE(no_create_why.find("its 'create' list has neither uid 0"), std::string::npos) << no_create_why;

  auto [absent, absent_why] = code_of([&] { client.open_existing_topic("nosuch", shmbus::Role::subscriber); });
  EXPECT_EQ(absent, shmbus::Errc::no_such_topic);
  EXPECT_EQ(absent_why, "opening topic 'nosuch': no topic 'nosuch' on bus 'default'");
  EXPECT_TRUE(client.list_topics().empty()) << "open_existing_topic created the topic";

  shmbus::TopicConfig typed;
  typed.name = "typed";
  typed.type_id = 0x1234;
  client.open_topic(typed, shmbus::Role::publisher);
  typed.type_id = 0x5678;
  auto [other, other_why] = code_of([&] { client.open_topic(typed, shmbus::Role::publisher); });
  EXPECT_EQ(other, shmbus::Errc::type_mismatch);
  EXPECT_NE(other_why.find("carries type id 4660, not 22136"), std::string::npos) << other_why;

  shmbus::TopicConfig bad;
  bad.name = "bad";
  bad.size_classes = {{64, 0}};
  auto [invalid, invalid_why] = code_of([&] { client.open_topic(bad, shmbus::Role::publisher); });
  EXPECT_EQ(invalid, shmbus::Errc::invalid_config);
  EXPECT_EQ(invalid_why.rfind("opening topic 'bad': cannot open topic 'bad': ", 0), 0u) << invalid_why;
}

TEST(AccessRules, CreatingNeedsTheCreateListOrElseThePublishList) {
  auto dir = make_temp_dir("create-right");
  auto conf = dir / "shmbusd.toml";
  std::ofstream(conf) << "[[access]]\ntopic = \"open*\"\npublish = [\"uid:1001\"]\nsubscribe = [\"*\"]\n"
                         "[[access]]\ntopic = \"lab*\"\npublish = [\"uid:1001\"]\nsubscribe = [\"*\"]\ncreate = [\"gid:77\"]\n";
  Options o;
  load_config_file(conf, o);
  PeerIdentity publisher{1001, 1001, {}}, reader{1002, 1002, {}}, lab_member{1003, 1003, {77}};
  EXPECT_EQ(o.rules.check("open-a", Right::create, publisher), "") << "without a create list, publishers create";
  EXPECT_NE(o.rules.check("open-a", Right::create, reader), "") << "subscribing never lets one create";
  EXPECT_NE(o.rules.check("lab-a", Right::create, publisher), "") << "a create list replaces the publish list";
  EXPECT_EQ(o.rules.check("lab-a", Right::create, lab_member), "");
  EXPECT_EQ(o.rules.check("lab-a", Right::subscribe, reader), "");
  std::filesystem::remove_all(dir);
}

// Handing an anonymous region back to a restarted daemon makes it a topic of this bus again:
// that needs the create right like opening a new topic does.
TEST(AccessRules, HandingBackARegionTheDaemonDoesNotKnowNeedsTheCreateRight) {
  auto dir = make_temp_dir("adopt-create");
  auto conf = dir / "shmbusd.toml";
  std::ofstream(conf) << "[[access]]\ntopic = \"*\"\npublish = [\"uid:0\"]\nsubscribe = [\"uid:0\"]\n";
  auto d = std::make_unique<DaemonProcess>(dir, std::vector<std::string>{"--config", conf.string()});
  d->start();
  shmbus::Client client(client_at(*d));
  shmbus::Topic topic = client.open_topic("handed", shmbus::Role::publisher);
  shmbus::RawPublisher pub = client.publisher(topic);
  d->kill_now(SIGKILL);

  std::ofstream(conf) << "[[access]]\ntopic = \"*\"\npublish = [\"uid:0\"]\nsubscribe = [\"uid:0\"]\ncreate = []\n";
  d = std::make_unique<DaemonProcess>(dir, std::vector<std::string>{"--config", conf.string()});
  d->start();
  for (int i = 0; i < 500 && client.connection_count() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(client.connection_count(), 2u);
  shmbus::Client observer(client_at(*d));
  EXPECT_TRUE(observer.list_topics().empty()) << "a publisher without the create right made the topic again";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shmbusd::test
