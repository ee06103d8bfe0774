// The bridge's naming rules and config reader, in process.
#include <gtest/gtest.h>

#include <fstream>

#include "config.hpp"
#include "subjects.hpp"

namespace shmbus::bridge {
namespace {

TEST(BridgeSubjects, TopicNamesMapToSubjectsAndBackOnlyWhenTheyCanCrossUnchanged) {
  EXPECT_EQ(subject_of("shmbus.r1", "camera/front").value_or(""), "shmbus.r1.camera.front");
  EXPECT_EQ(topic_of("shmbus.r1", "shmbus.r1.camera.front").value_or(""), "camera/front");
  for (const char* bad : {"a.b", "a b", "a/*", "a/>", "/a", "a//b", "a/", "_schema/x", ""}) {
    EXPECT_FALSE(subject_of("p", bad)) << bad;
  }
  EXPECT_FALSE(topic_of("p", "p._schema.0123456789abcdef"));  // schema requests are not topics
  EXPECT_FALSE(topic_of("p", "q.a"));
  EXPECT_FALSE(topic_of("p", "pa.b"));
  EXPECT_FALSE(topic_of("p", "p."));
  EXPECT_TRUE(topic_matches("sensors/*", "sensors/imu/raw"));
  EXPECT_FALSE(topic_matches("sensors/*", "camera/front"));
  EXPECT_EQ(parse_u64("18446744073709551615").value_or(0), UINT64_MAX);
  for (const char* bad : {"18446744073709551616", "-1", " 1", "1 ", "", "0x10"}) EXPECT_FALSE(parse_u64(bad)) << bad;
  EXPECT_NE(schema_id_of("a"), schema_id_of("b"));
  EXPECT_EQ(schema_id_of("a").size(), 16u);
}

std::filesystem::path write(const std::string& text) {
  std::filesystem::path p = std::filesystem::temp_directory_path() / ("bridge-config-" + std::to_string(getpid()) + ".toml");
  std::ofstream(p) << text;
  return p;
}

std::string error_of(const std::string& text) {
  try {
    load_config(write(text));
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(BridgeConfig, ReadsEveryKeyAndRefusesTyposAndBadValuesNamingTheLine) {
  BridgeConfig c = load_config(write(
      "bus = \"b\"\nbus_id = \"robot1\"\nsubject_prefix = \"shmbus.r1\"\n[nats]\nservers = [\"nats://h:1\", \"nats://h:2\"]\n"
      "token = \"t\"\nreconnect_wait_ms = 50\n[[export]]\ntopics = \"x/*\"\n[[import]]\ntopics = \"y/*\"\n"
      "[[import]]\ntopics = \"z\"\nprefix = \"other\"\nsize_classes = [[128, 4]]\nqueue_depth = 8\n"));
  EXPECT_EQ(c.bus, "b");
  EXPECT_EQ(c.bus_id, "robot1");
  EXPECT_EQ(c.nats.servers.size(), 2u);
  EXPECT_EQ(c.nats.token, "t");
  EXPECT_EQ(c.nats.reconnect_wait_ms, 50);
  ASSERT_EQ(c.exports.size(), 1u);
  ASSERT_EQ(c.imports.size(), 2u);
  EXPECT_EQ(c.imports[0].prefix, "shmbus.r1");  // default: the bridge's own prefix
  EXPECT_EQ(c.imports[1].prefix, "other");
  EXPECT_EQ(c.imports[1].size_classes[0].chunk_size, 128u);
  EXPECT_EQ(c.imports[1].queue_depth, 8u);

  EXPECT_NE(error_of("[nats]\nservrs = []\n").find(":2: unknown key 'servrs' in [nats]"), std::string::npos);
  EXPECT_NE(error_of("subject_prefix = \"a..b\"\n").find("'subject_prefix' must be NATS subject tokens"), std::string::npos);
  EXPECT_NE(error_of("[[export]]\n").find("[[export]] needs 'topics'"), std::string::npos);
  EXPECT_NE(error_of("[nats]\ntls_cert = \"c\"\n").find("'tls_cert' and 'tls_key' go together"), std::string::npos);
  EXPECT_NE(error_of("[[import]]\ntopics = \"x\"\nsize_classes = [[0, 1]]\n").find("both positive"), std::string::npos);
  EXPECT_NE(error_of("bus_id = \"a b\"\n").find("'bus_id'"), std::string::npos);
  std::filesystem::remove(write(""));
}

}  // namespace
}  // namespace shmbus::bridge
