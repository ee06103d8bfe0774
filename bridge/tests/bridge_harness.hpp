// Test helpers for the bridge: a real nats-server on a free loopback port, shmbusd children on
// buses of their own, and shmbus-bridge children with a generated config. Every process is
// killed and reaped by its destructor, also when an assertion fails.
#pragma once

#include <arpa/inet.h>
#include <nats/nats.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "daemon_harness.hpp"
#include "other_uid.hpp"

namespace shmbus::bridge::test {

using shmbusd::test::signal_and_reap;
using shmbusd::test::wait_exit;

inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

inline bool tcp_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// Forks and execs `args` with stdout and stderr appended to `log` (unless empty).
inline pid_t spawn(std::vector<std::string> args, const std::filesystem::path& log) {
  pid_t pid = fork();
  if (pid == 0) {
    if (!log.empty()) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

class NatsServer {
 public:
  // `config`: nats-server configuration text (e.g. "max_payload: 1024"), none by default.
  explicit NatsServer(const std::string& config = {}) : port_(free_loopback_port()) {
    if (!config.empty()) {
      config_ = std::filesystem::temp_directory_path() / ("bridge-nats-" + std::to_string(port_) + ".conf");
      std::ofstream(config_) << config << "\n";
    }
    start();
  }
  ~NatsServer() {
    kill9();
    if (!config_.empty()) std::filesystem::remove(config_);
  }
  void start() {
    std::vector<std::string> argv = {NATS_SERVER_BINARY, "-a", "127.0.0.1", "-p", std::to_string(port_)};
    if (!config_.empty()) argv.insert(argv.end(), {"-c", config_.string()});
    pid_ = spawn(argv, "/dev/null");
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!tcp_accepts(port_)) {
      if (std::chrono::steady_clock::now() > end) throw std::runtime_error("nats-server did not come up");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  void kill9() { signal_and_reap(pid_, SIGKILL); }
  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  std::filesystem::path config_;
  pid_t pid_ = -1;
};

// A shmbusd on bus `bus` in a runtime directory of its own.
class Bus {
 public:
  explicit Bus(const std::string& bus, const std::string& config_toml = {})
      : name_(bus), dir_(shmbusd::test::make_temp_dir(("bridge-" + bus).c_str())) {
    std::vector<std::string> extra = {"--bus", bus};
    if (!config_toml.empty()) {
      std::ofstream(dir_ / "shmbusd.toml") << config_toml;
      extra.insert(extra.end(), {"--config", (dir_ / "shmbusd.toml").string()});
    }
    daemon_.emplace(dir_, extra);
    start();
  }
  ~Bus() {
    daemon_->kill_now(SIGKILL);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void start() {
    daemon_->start(false);
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!shmbusd::test::can_connect(socket())) {
      if (std::chrono::steady_clock::now() > end) throw std::runtime_error("shmbusd did not come up");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  void kill9() { daemon_->kill_now(SIGKILL); }
  std::filesystem::path socket() const { return dir_ / (name_ + ".sock"); }
  const std::filesystem::path& dir() const { return dir_; }
  const std::string& name() const { return name_; }
  ClientOptions client_options() const {
    ClientOptions o;
    o.socket = socket();
    o.timeout = std::chrono::milliseconds(3000);
    return o;
  }

 private:
  std::string name_;
  std::filesystem::path dir_;
  std::optional<shmbusd::test::DaemonProcess> daemon_;
};

// A shmbus-bridge child. `rules` is TOML appended to the generated config ([[export]] ...).
class BridgeProcess {
 public:
  BridgeProcess(const Bus& bus, const NatsServer& nats, const std::string& bus_id, const std::string& rules,
                std::vector<std::string> prefix_argv = {})
      : dir_(bus.dir()), id_(bus_id) {
    config_ = dir_ / ("bridge-" + bus_id + ".toml");
    status_ = dir_ / ("bridge-" + bus_id + ".status.json");
    log_ = dir_ / ("bridge-" + bus_id + ".log");
    std::ofstream(config_) << "socket = \"" << bus.socket().string() << "\"\nbus_id = \"" << bus_id << "\"\nstatus_file = \""
                           << status_.string() << "\"\n[nats]\nservers = [\"" << nats.url() << "\"]\nreconnect_wait_ms = 100\n"
                           << rules << "\n";
    std::vector<std::string> argv = prefix_argv;
    argv.insert(argv.end(), {SHMBUS_BRIDGE_BINARY, "run", "-c", config_.string(), "--log-level", "info"});
    pid_ = spawn(argv, log_);
  }
  ~BridgeProcess() { kill_now(SIGKILL); }
  int kill_now(int sig) { return signal_and_reap(pid_, sig); }
  pid_t pid() const { return pid_; }
  // The status file as JSON (null until the bridge wrote one).
  nlohmann::json status() const {
    std::ifstream f(status_);
    std::stringstream s;
    s << f.rdbuf();
    return nlohmann::json::parse(s.str(), nullptr, false);
  }
  // Counter `key` of `topic` (nested keys as "malformed/garbage"), 0 when not there yet.
  std::uint64_t counter(const std::string& topic, const std::string& key) const {
    nlohmann::json j = status();
    if (j.is_discarded() || !j.contains("topics") || !j["topics"].contains(topic)) return 0;
    nlohmann::json t = j["topics"][topic];
    auto slash = key.find('/');
    if (slash != std::string::npos) return t[key.substr(0, slash)].value(key.substr(slash + 1), 0ull);
    return t.value(key, 0ull);
  }
  bool knows_topic(const std::string& topic) const {
    nlohmann::json j = status();
    return !j.is_discarded() && j.contains("topics") && j["topics"].contains(topic);
  }
  std::string log() const { return shmbusd::test::slurp(log_); }
  const std::filesystem::path& status_file() const { return status_; }
  const std::filesystem::path& config_file() const { return config_; }

 private:
  std::filesystem::path dir_, config_, status_, log_;
  std::string id_;
  pid_t pid_ = -1;
};

// Polls `pred` every 20 ms for up to `timeout`.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// Calls `send()` every 50 ms until `arrived()`, for up to 15 s: how the tests wait for the path
// across the buses (subscriptions, topics made on the far side) before what they measure.
template <typename Send, typename Arrived>
bool resend_until(Send send, Arrived arrived) {
  return eventually([&] {
    send();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return arrived();
  });
}

inline bool bus_has_topic(Client& c, const std::string& name) {
  for (const TopicListing& t : c.list_topics()) {
    if (t.config.name == name) return true;
  }
  return false;
}

// Two buses joined through one nats-server (`nats_config` as NatsServer's): bus "a" whose bridge
// (bus id "busA") exports `topics`, bus "b" whose bridge ("busB") imports them (`import_keys`:
// more keys of that [[import]] table, e.g. "queue_depth = 1024\n"), and a client on each.
// `bridge_keys`: top-level keys of both bridges' configs (e.g. TLS).
struct BridgedBuses {
  explicit BridgedBuses(const std::string& topics, const std::string& import_keys = {}, const std::string& nats_config = {},
                        const std::string& bridge_keys = {})
      : nats(nats_config),
        bridge_a(a, nats, "busA", bridge_keys + "[[export]]\ntopics = \"" + topics + "\"\n"),
        bridge_b(b, nats, "busB", bridge_keys + "[[import]]\ntopics = \"" + topics + "\"\n" + import_keys) {}
  std::string logs() const { return bridge_a.log() + bridge_b.log(); }

  NatsServer nats;
  Bus a{"a"}, b{"b"};
  BridgeProcess bridge_a, bridge_b;
  Client ca{a.client_options()}, cb{b.client_options()};
};

// What the hostile-input tests start from: bus "b" whose bridge (bus id "busB") imports
// `in/*`, the raw topic `in/raw` (4 KiB chunks) subscribed there, and a plain NATS connection
// of the test that sends whatever bytes it is given to that topic's subject.
class ImportTarget {
 public:
  ImportTarget() : sub(client.subscriber(client.open_topic(in_raw(), Role::subscriber))) {
    if (!eventually([&] { return !bridge.status().is_discarded(); })) throw std::runtime_error("bridge never wrote its status: " + bridge.log());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its subscription is in place
    if (natsConnection_ConnectTo(&nc_, nats.url().c_str()) != NATS_OK) throw std::runtime_error("test cannot connect to " + nats.url());
  }
  ~ImportTarget() { natsConnection_Destroy(nc_); }
  // Publishes `bytes` on shmbus.in.raw; flush() waits until the server has them.
  bool send(const std::string& bytes) {
    return natsConnection_Publish(nc_, "shmbus.in.raw", bytes.data(), static_cast<int>(bytes.size())) == NATS_OK;
  }
  void flush() { natsConnection_Flush(nc_); }

  NatsServer nats;
  Bus bus{"b"};
  BridgeProcess bridge{bus, nats, "busB", "[[import]]\ntopics = \"in/*\"\n"};
  Client client{bus.client_options()};
  RawSubscriber sub;

 private:
  static TopicConfig in_raw() {
    TopicConfig raw;
    raw.name = "in/raw";
    raw.size_classes = {{4096, 32}};
    return raw;
  }
  natsConnection* nc_ = nullptr;
};

}  // namespace shmbus::bridge::test
