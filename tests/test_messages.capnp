@0xd5a1c0f4b2e3a791;
# Message types used by the test suite only.
using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("shmbus::test");

struct Reading {
  seq @0 :UInt64;
  publisher @1 :UInt32;
  checksum @2 :UInt64;    # FNV-1a of body
  body @3 :Data;
}

struct Tree {
  value @0 :Int64;
  children @1 :List(Tree);
}

struct Blob {
  parts @0 :List(Data);
}

# A typed request/response service's types (cli/tests/service_daemon_cli_test.cpp).
struct MultiplyRequest {
  a @0 :Int64;
  b @1 :Int64;
}

struct MultiplyResponse {
  product @0 :Int64;
  note @1 :Text;
}
