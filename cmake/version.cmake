# shmbus_version: a generated header (shmbus_version.hpp) with the project version and the
# two compatibility versions a user asks about, for `shmbus --version` and `shmbusd --version`.
# The layout and protocol versions are read from their one definition (bus/layout.hpp,
# schema/control.capnp), and CMake reconfigures when either file changes.
set(_layout_file ${PROJECT_SOURCE_DIR}/bus/layout.hpp)
set(_protocol_file ${PROJECT_SOURCE_DIR}/schema/control.capnp)
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_layout_file} ${_protocol_file})

file(STRINGS ${_layout_file} _line REGEX "inline constexpr std::uint32_t kLayoutVersion = [0-9]+;")
string(REGEX REPLACE ".*kLayoutVersion = ([0-9]+).*" "\\1" SHMBUS_LAYOUT_VERSION "${_line}")
file(STRINGS ${_protocol_file} _line REGEX "^const protocolVersion :UInt32 = [0-9]+;")
string(REGEX REPLACE ".*= ([0-9]+).*" "\\1" SHMBUS_PROTOCOL_VERSION "${_line}")
if(NOT SHMBUS_LAYOUT_VERSION MATCHES "^[0-9]+$" OR NOT SHMBUS_PROTOCOL_VERSION MATCHES "^[0-9]+$")
  message(FATAL_ERROR "cmake/version.cmake: cannot read kLayoutVersion from ${_layout_file} "
                      "or protocolVersion from ${_protocol_file}")
endif()

configure_file(${CMAKE_CURRENT_LIST_DIR}/shmbus_version.hpp.in ${PROJECT_BINARY_DIR}/generated/shmbus_version.hpp @ONLY)
add_library(shmbus_version INTERFACE)
target_include_directories(shmbus_version INTERFACE ${PROJECT_BINARY_DIR}/generated)
