/* check.h's process helpers and test runner. */
#define _GNU_SOURCE
#include "check.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kMaxChildren = 32 };
static pid_t children[kMaxChildren];
static size_t child_count;

void remember_child(pid_t pid) {
  if (child_count < kMaxChildren) children[child_count++] = pid;
}

static void forget_child(pid_t pid) {
  for (size_t i = 0; i < child_count; ++i)
    if (children[i] == pid) children[i] = children[--child_count];
}

void kill_remembered_children(void) {
  for (size_t i = 0; i < child_count; ++i) {
    kill(children[i], SIGKILL);
    while (waitpid(children[i], NULL, 0) < 0 && errno == EINTR) {
    }
  }
  child_count = 0;
}

int wait_child(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 2) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      forget_child(pid);
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return -1;
}

int run_tests(const test_case* tests, size_t count, int argc, char** argv) {
  int failed = 0, ran = 0;
  for (size_t i = 0; i < count; ++i) {
    if (argc > 1 && strcmp(argv[1], tests[i].name) != 0) continue;
    ++ran;
    int rc = tests[i].run();
    kill_remembered_children();
    fprintf(stderr, "%s %s\n", rc == 0 ? "PASS" : "FAIL", tests[i].name);
    failed += rc != 0;
  }
  if (ran == 0) {
    fprintf(stderr, "no test named '%s'\n", argc > 1 ? argv[1] : "");
    return 2;
  }
  return failed == 0 ? 0 : 1;
}
