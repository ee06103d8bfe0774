# Installs headers, the library, a CMake package (find_package(shmbus) -> shmbus::shmbus) and
# a pkg-config file (shmbus.pc). Both packages are relocatable: `cmake --install build --prefix
# <anywhere>` gives a working package whatever CMAKE_INSTALL_PREFIX was at configure time.
include(CMakePackageConfigHelpers)

set(SHMBUS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/shmbus)

# What a consumer of the installed library needs beyond what bus/CMakeLists.txt states:
# C++20 for the headers (the build tree gets it from CMAKE_CXX_STANDARD, which does not travel)
# and, while libshmbus is a static archive, the libraries its objects use privately: the
# control protocol's Cap'n Proto RPC (schema/ is linked in as a build-only object library).
target_compile_features(shmbus INTERFACE cxx_std_20)
get_target_property(_shmbus_type shmbus TYPE)
if(_shmbus_type STREQUAL "STATIC_LIBRARY")
  target_link_libraries(shmbus INTERFACE $<INSTALL_INTERFACE:CapnProto::capnp-rpc>)
  set(SHMBUS_PC_REQUIRES "capnp capnp-rpc")
  set(SHMBUS_PC_REQUIRES_PRIVATE "")
else()
  set(SHMBUS_PC_REQUIRES "capnp")
  set(SHMBUS_PC_REQUIRES_PRIVATE "capnp-rpc")
endif()

install(TARGETS shmbus EXPORT shmbusTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
)
# Every public header, detail/ included (the typed API's templates need it).
install(DIRECTORY include/shmbus DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.hpp")
install(EXPORT shmbusTargets NAMESPACE shmbus:: DESTINATION ${SHMBUS_CMAKE_DIR})
configure_package_config_file(cmake/shmbusConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/shmbusConfig.cmake
  INSTALL_DESTINATION ${SHMBUS_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/shmbusConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/shmbusConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/shmbusConfigVersion.cmake
  DESTINATION ${SHMBUS_CMAKE_DIR})

# pkg-config: the prefix is derived from the .pc file's own location (${pcfiledir}), so the
# file stays right when installed under another prefix than the configured one.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(SHMBUS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(SHMBUS_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(SHMBUS_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH _shmbus_pc_up "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
  string(REGEX REPLACE "/$" "" _shmbus_pc_up "${_shmbus_pc_up}")
  set(SHMBUS_PC_PREFIX "\${pcfiledir}/${_shmbus_pc_up}")
  set(SHMBUS_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(SHMBUS_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(cmake/shmbus.pc.in ${CMAKE_CURRENT_BINARY_DIR}/shmbus.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/shmbus.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# The C API (capi/): C programs use shmbus-c.pc, whose flags suit a C compiler (shmbus.pc's
# -std=c++20 does not) and which names the C++ runtime the library needs.
if(TARGET shmbus_c)
  configure_file(cmake/shmbus-c.pc.in ${CMAKE_CURRENT_BINARY_DIR}/shmbus-c.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/shmbus-c.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()

# The guides, where the systemd unit's Documentation= points.
install(FILES README.md docs/usage.md docs/cli.md docs/internals.md docs/c-api.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
