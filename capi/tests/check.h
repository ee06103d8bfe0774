/* The C tests' assertion vocabulary and process helpers. A test is a function returning 0 on
 * success; CHECK returns 1 from it at the first failure, saying where and what. Every child
 * process a test starts is remembered, and main() kills and reaps them all after each test,
 * passed or failed. */
#ifndef SHMBUS_CAPI_TESTS_CHECK_H
#define SHMBUS_CAPI_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "shmbus/shmbus.h"

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);       \
      return 1;                                                                       \
    }                                                                                 \
  } while (0)

/* Calls `call`, and fails unless it returned `expected` (shmbus_errc_ok for success). */
#define CHECK_ERRC(call, expected)                                                     \
  do {                                                                                 \
    shmbus_errc check_got_ = (call);                                                   \
    if (check_got_ != (expected)) {                                                    \
      fprintf(stderr, "%s:%d: %s returned '%s', expected '%s' (last error: %s)\n",     \
              __FILE__, __LINE__, #call, shmbus_errc_name(check_got_),                 \
              shmbus_errc_name(expected), shmbus_last_error_message());                \
      return 1;                                                                        \
    }                                                                                  \
  } while (0)

#define CHECK_OK(call) CHECK_ERRC(call, shmbus_errc_ok)

/* A test: its sentence-like name (the ctest name) and its body. */
typedef struct test_case {
  const char* name;
  int (*run)(void);
} test_case;

/* Children started by the test running now; killed (SIGKILL) and reaped after it. */
void remember_child(pid_t pid);
void kill_remembered_children(void);
/* Waits up to `timeout_ms` for `pid` to exit: its exit code, 128 + signal when killed, -1 on
   timeout. Forgets it when it exited. */
int wait_child(pid_t pid, int timeout_ms);

/* Runs the test named argv[1] of `tests` (all of them without an argument). */
int run_tests(const test_case* tests, size_t count, int argc, char** argv);

#endif
