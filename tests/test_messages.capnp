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
