/* The C API across real processes: a C program and a C++ one (capi_cpp_peer, exec'd) exchange
 * messages through a real bus daemon (shmbusd, exec'd), both ways; the daemon client's calls and
 * errors; and a C publisher killed with SIGKILL while holding loans, whose chunks come back,
 * through the daemon and without one. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "exchange_pattern.h"

enum { kExchangeCount = 2000 };

static char runtime_dir[64];
static char socket_path[128];

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int can_connect(const char* path) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len >= sizeof addr.sun_path) return 0;
  memcpy(addr.sun_path, path, len + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int ok = connect(fd, (struct sockaddr*)&addr, sizeof addr) == 0;
  close(fd);
  return ok;
}

/* Starts shmbusd on a fresh runtime directory; 0 once its socket accepts. */
static int start_daemon(void) {
  snprintf(runtime_dir, sizeof runtime_dir, "/tmp/capi-daemon-XXXXXX");
  if (mkdtemp(runtime_dir) == NULL) return 1;
  snprintf(socket_path, sizeof socket_path, "%s/default.sock", runtime_dir);
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a test that crashed */
    execl(SHMBUSD_BINARY, SHMBUSD_BINARY, "--runtime-dir", runtime_dir, "--log-level", "warn", (char*)NULL);
    _exit(127);
  }
  if (pid < 0) return 1;
  remember_child(pid);
  for (int i = 0; i < 2000; ++i) {
    if (can_connect(socket_path)) return 0;
    if (waitpid(pid, NULL, WNOHANG) == pid) return fprintf(stderr, "shmbusd exited at start\n"), 1;
    sleep_ms(5);
  }
  return fprintf(stderr, "shmbusd did not come up\n"), 1;
}

static void remove_runtime_dir(void) {
  if (runtime_dir[0] == '\0') return;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", runtime_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", runtime_dir);
  runtime_dir[0] = '\0';
}

static shmbus_errc connect_client(shmbus_client_t** client) {
  shmbus_client_options o;
  shmbus_client_options_init(&o);
  o.socket = socket_path;
  o.name = "capi_process_test";
  o.timeout_ms = 5000;
  o.reconnect = 0;
  return shmbus_client_create(&o, client);
}

/* The exchange topic: the block policy, so that nobody loses a message to a slow peer. */
static void exchange_config(shmbus_topic_config* cfg, const char* name) {
  static const shmbus_size_class cls = {kExchangeMessageSize, 128};
  shmbus_topic_config_init(cfg);
  cfg->name = name;
  cfg->size_classes = &cls;
  cfg->size_class_count = 1;
  cfg->queue_depth = 32;
  cfg->policy = shmbus_policy_block;
  cfg->block_timeout_ns = 5LL * 1000 * 1000 * 1000;
}

/* Runs capi_cpp_peer MODE SOCKET TOPIC COUNT; its stdout goes to *out_fd when out_fd is set. */
static pid_t spawn_peer(const char* mode, const char* topic, int count, int* out_fd) {
  int p[2] = {-1, -1};
  if (out_fd != NULL && pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a test that crashed */
    if (out_fd != NULL) {
      dup2(p[1], STDOUT_FILENO);
      close(p[0]);
      close(p[1]);
    }
    char n[32];
    snprintf(n, sizeof n, "%d", count);
    execl(CAPI_CPP_PEER, CAPI_CPP_PEER, mode, socket_path, topic, n, (char*)NULL);
    _exit(127);
  }
  if (pid > 0) remember_child(pid);
  if (out_fd != NULL) {
    close(p[1]);
    *out_fd = p[0];
  }
  return pid;
}

/* Reads one line (up to `cap` - 1 bytes) from fd within timeout_ms; 0 on success. */
static int read_line(int fd, char* buf, size_t cap, int timeout_ms) {
  size_t n = 0;
  while (n + 1 < cap) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return 1;
    ssize_t r = read(fd, buf + n, 1);
    if (r != 1) return 1;
    if (buf[n] == '\n') break;
    ++n;
  }
  buf[n] = '\0';
  return 0;
}

/* ---- tests ---- */

static int a_c_publisher_feeds_a_cpp_subscriber_through_the_daemon(void) {
  CHECK(start_daemon() == 0);
  shmbus_client_t* client = NULL;
  CHECK_OK(connect_client(&client));
  shmbus_topic_config cfg;
  exchange_config(&cfg, "capi/c-to-cpp");
  shmbus_topic_t* topic = NULL;
  CHECK_OK(shmbus_client_open_topic(client, &cfg, shmbus_role_publisher, &topic));
  shmbus_publisher_t* pub = NULL;
  CHECK_OK(shmbus_client_publisher(client, topic, &pub));

  int out = -1;
  pid_t peer = spawn_peer("subscribe", "capi/c-to-cpp", kExchangeCount, &out);
  CHECK(peer > 0);
  char line[32];
  CHECK(read_line(out, line, sizeof line, 20000) == 0 && strcmp(line, "ready") == 0);
  close(out);
  for (uint64_t i = 0; i < kExchangeCount; ++i) {
    shmbus_loan_t* loan = NULL;
    void* data = NULL;
    CHECK_OK(shmbus_publisher_loan(pub, kExchangeMessageSize, &loan, &data, NULL));
    write_exchange_message(data, i);
    CHECK_OK(shmbus_publisher_publish(pub, &loan, kExchangeMessageSize));
  }
  CHECK(wait_child(peer, 30000) == 0);

  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  shmbus_client_free(&client);
  CHECK(client == NULL);
  remove_runtime_dir();
  return 0;
}

static int a_cpp_publisher_feeds_a_c_subscriber_through_the_daemon(void) {
  CHECK(start_daemon() == 0);
  shmbus_client_t* client = NULL;
  CHECK_OK(connect_client(&client));
  shmbus_topic_config cfg;
  exchange_config(&cfg, "capi/cpp-to-c");
  shmbus_topic_t* topic = NULL;
  CHECK_OK(shmbus_client_open_topic(client, &cfg, shmbus_role_subscriber, &topic));
  shmbus_subscriber_options opts;
  shmbus_subscriber_options_init(&opts);
  opts.wait_mode = shmbus_wait_block;
  shmbus_subscriber_t* sub = NULL;
  CHECK_OK(shmbus_client_subscriber(client, topic, &opts, &sub));

  pid_t peer = spawn_peer("publish", "capi/cpp-to-c", kExchangeCount, NULL);
  CHECK(peer > 0);
  for (uint64_t i = 0; i < kExchangeCount; ++i) {
    shmbus_sample_t* s = NULL;
    const void* bytes = NULL;
    size_t size = 0;
    shmbus_sample_info info;
    CHECK_OK(shmbus_subscriber_take_wait(sub, 20LL * 1000 * 1000 * 1000, &s));
    CHECK_OK(shmbus_sample_data(s, &bytes, &size));
    CHECK_OK(shmbus_sample_get_info(s, &info));
    CHECK(size == kExchangeMessageSize && exchange_message_is(bytes, i));
    CHECK(info.sequence == i && info.lost_before == 0);
    CHECK_OK(shmbus_sample_release(&s));
  }
  CHECK(wait_child(peer, 30000) == 0);
  shmbus_sample_t* s = NULL;
  CHECK_ERRC(shmbus_subscriber_take(sub, &s), shmbus_errc_no_data);

  shmbus_subscriber_free(&sub);
  shmbus_topic_free(&topic);
  shmbus_client_free(&client);
  remove_runtime_dir();
  return 0;
}

static int the_daemon_clients_errors_name_what_was_wrong(void) {
  /* No daemon at this socket. */
  shmbus_client_options o;
  shmbus_client_options_init(&o);
  o.socket = "/tmp/capi-no-daemon-here.sock";
  o.reconnect = 0;
  o.timeout_ms = 1000;
  shmbus_client_t* client = NULL;
  CHECK_ERRC(shmbus_client_create(&o, &client), shmbus_errc_system_error);
  CHECK(strstr(shmbus_last_error_message(), "/tmp/capi-no-daemon-here.sock") != NULL);
  CHECK(client == NULL);
  memset(&o, 0, sizeof o);
  CHECK_ERRC(shmbus_client_create(&o, &client), shmbus_errc_misuse);

  CHECK(start_daemon() == 0);
  CHECK_OK(connect_client(&client));
  shmbus_topic_t* topic = NULL;
  CHECK_ERRC(shmbus_client_open_existing_topic(client, "capi/none", shmbus_role_subscriber, &topic),
             shmbus_errc_no_such_topic);
  CHECK(strstr(shmbus_last_error_message(), "capi/none") != NULL);
  shmbus_topic_config cfg;
  shmbus_topic_config_init(&cfg);
  CHECK_ERRC(shmbus_client_open_topic(client, &cfg, shmbus_role_publisher, &topic), shmbus_errc_invalid_config);
  exchange_config(&cfg, "capi/errors");
  CHECK_ERRC(shmbus_client_open_topic(client, &cfg, (shmbus_role)5, &topic), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_client_open_topic(client, NULL, shmbus_role_publisher, &topic), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_client_open_topic(client, &cfg, shmbus_role_publisher, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_client_open_existing_topic(client, NULL, shmbus_role_publisher, &topic), shmbus_errc_misuse);
  CHECK(topic == NULL);
  CHECK_OK(shmbus_client_open_topic(client, &cfg, shmbus_role_subscriber, &topic));
  CHECK_ERRC(shmbus_client_publisher(client, NULL, NULL), shmbus_errc_misuse);
  /* Opened as subscriber: registering a publisher on it is refused by the client. */
  shmbus_publisher_t* pub = NULL;
  shmbus_errc as_pub = shmbus_client_publisher(client, topic, &pub);
  CHECK(as_pub != shmbus_errc_ok && pub == NULL);
  CHECK(strlen(shmbus_last_error_message()) > strlen("shmbus_client_publisher: "));
  shmbus_topic_t* again = NULL;
  CHECK_OK(shmbus_client_open_existing_topic(client, "capi/errors", shmbus_role_subscriber, &again));
  const char* name = NULL;
  CHECK_OK(shmbus_topic_name(again, &name));
  CHECK(strcmp(name, "capi/errors") == 0);
  shmbus_topic_free(&again);
  shmbus_topic_free(&topic);
  shmbus_client_free(&client);
  shmbus_client_free(&client); /* NULL by now: nothing */
  remove_runtime_dir();
  return 0;
}

/* A child that publishes nothing but holds `loans` loans, says "r" on `ready_fd`, and waits to
 * be killed. With a socket, it goes through the daemon; else it uses the inherited topic. */
static void loan_holding_child(shmbus_topic_t* inherited, const char* topic_name, int loans, int ready_fd) {
  shmbus_client_t* client = NULL;
  shmbus_topic_t* topic = inherited;
  shmbus_publisher_t* pub = NULL;
  if (inherited == NULL) {
    shmbus_topic_config cfg;
    exchange_config(&cfg, topic_name);
    if (connect_client(&client) != shmbus_errc_ok) _exit(20);
    if (shmbus_client_open_topic(client, &cfg, shmbus_role_publisher, &topic) != shmbus_errc_ok) _exit(21);
    if (shmbus_client_publisher(client, topic, &pub) != shmbus_errc_ok) _exit(22);
  } else if (shmbus_publisher_create(topic, &pub) != shmbus_errc_ok) {
    _exit(23);
  }
  for (int i = 0; i < loans; ++i) {
    shmbus_loan_t* loan = NULL;
    void* data = NULL;
    if (shmbus_publisher_loan(pub, 8, &loan, &data, NULL) != shmbus_errc_ok) _exit(24);
    memset(data, 0x5a, 8);
  }
  if (write(ready_fd, "r", 1) != 1) _exit(25);
  for (;;) pause();
}

static int a_killed_c_publishers_loans_come_back_without_a_daemon(void) {
  shmbus_topic_config cfg;
  exchange_config(&cfg, "capi/killed-daemonless");
  shmbus_topic_t* topic = NULL;
  CHECK_OK(shmbus_topic_create(&cfg, NULL, &topic));
  uint32_t free_chunks = 0, total = 0;
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t child = fork();
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    loan_holding_child(topic, NULL, 5, p[1]);
  }
  remember_child(child);
  close(p[1]);
  char c;
  CHECK(read(p[0], &c, 1) == 1);
  close(p[0]);
  /* Payload lives in each publisher's own pool: the child's, seen from here. */
  CHECK_OK(shmbus_topic_free_chunks(topic, &free_chunks, &total));
  CHECK(total == 128 && free_chunks == total - 5);
  size_t reclaimed = 99;
  CHECK_OK(shmbus_topic_reclaim_dead_owners(topic, &reclaimed));
  CHECK(reclaimed == 0); /* alive: nothing taken from it */
  CHECK(kill(child, SIGKILL) == 0);
  CHECK(wait_child(child, 10000) == 128 + SIGKILL);
  CHECK_OK(shmbus_topic_reclaim_dead_owners(topic, &reclaimed));
  CHECK(reclaimed == 1);
  CHECK_OK(shmbus_topic_free_chunks(topic, &free_chunks, &total));
  CHECK(total == 128 && free_chunks == total);
  shmbus_topic_free(&topic);
  return 0;
}

static int a_killed_c_publishers_loans_are_given_back_by_the_daemon(void) {
  CHECK(start_daemon() == 0);
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t child = fork(); /* before this process starts a client (and its thread) */
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    loan_holding_child(NULL, "capi/killed", 5, p[1]);
  }
  remember_child(child);
  close(p[1]);
  char c;
  CHECK(read(p[0], &c, 1) == 1);
  close(p[0]);

  shmbus_client_t* client = NULL;
  CHECK_OK(connect_client(&client));
  shmbus_topic_t* topic = NULL;
  CHECK_OK(shmbus_client_open_existing_topic(client, "capi/killed", shmbus_role_subscriber, &topic));
  uint32_t free_chunks = 0, total = 0;
  CHECK_OK(shmbus_topic_free_chunks(topic, &free_chunks, &total));
  CHECK(total == 128 && free_chunks == total - 5);
  CHECK(kill(child, SIGKILL) == 0);
  CHECK(wait_child(child, 10000) == 128 + SIGKILL);
  /* The daemon saw the connection close and gives back what the child registered. */
  for (int i = 0; i < 1000 && free_chunks != total; ++i) {
    sleep_ms(5);
    CHECK_OK(shmbus_topic_free_chunks(topic, &free_chunks, &total));
  }
  CHECK(total == 128 && free_chunks == total);
  shmbus_topic_free(&topic);
  shmbus_client_free(&client);
  remove_runtime_dir();
  return 0;
}

int main(int argc, char** argv) {
  static const test_case tests[] = {
      {"a_c_publisher_feeds_a_cpp_subscriber_through_the_daemon", a_c_publisher_feeds_a_cpp_subscriber_through_the_daemon},
      {"a_cpp_publisher_feeds_a_c_subscriber_through_the_daemon", a_cpp_publisher_feeds_a_c_subscriber_through_the_daemon},
      {"the_daemon_clients_errors_name_what_was_wrong", the_daemon_clients_errors_name_what_was_wrong},
      {"a_killed_c_publishers_loans_come_back_without_a_daemon", a_killed_c_publishers_loans_come_back_without_a_daemon},
      {"a_killed_c_publishers_loans_are_given_back_by_the_daemon",
       a_killed_c_publishers_loans_are_given_back_by_the_daemon},
  };
  int rc = run_tests(tests, sizeof tests / sizeof tests[0], argc, argv);
  remove_runtime_dir(); /* after a failed test */
  return rc;
}
