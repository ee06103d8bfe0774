@0xa7898d3bdb992c6f;
# Message types of the shmbus examples.
using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("shmbus::examples");

# A small sensor reading: examples/telemetry_pub.cpp, telemetry_sub.cpp and demo.cpp.
struct Telemetry {
  sequence @0 :UInt64;      # counts from 0 per publisher run
  sendTimeNs @1 :UInt64;    # CLOCK_MONOTONIC, stamped just before publish
  sensor @2 :Text;
  temperatureC @3 :Float64;
  position @4 :Vec3;
}

struct Vec3 {
  x @0 :Float64;
  y @1 :Float64;
  z @2 :Float64;
}

# A large message: a synthetic camera frame, examples/frame_pub.cpp and frame_sub.cpp.
struct CameraFrame {
  sequence @0 :UInt64;
  sendTimeNs @1 :UInt64;    # CLOCK_MONOTONIC, stamped after the pixels are written
  width @2 :UInt32;
  height @3 :UInt32;
  bytesPerPixel @4 :UInt32;
  checksum @5 :UInt64;      # examples::checksum() of pixels
  pixels @6 :Data;          # width * height * bytesPerPixel bytes
}

# The typed request/response service of typed_service_server / typed_service_client.
struct Multiply {
  value @0 :UInt64;
  length @1 :UInt32;   # responses wanted: value*1 .. value*length
}

struct Product {
  product @0 :UInt64;
  index @1 :UInt32;    # 1-based position in the stream
  server @2 :Text;     # who answered
}
