# Installs headers, the library, a CMake package (find_package(shmbus) -> shmbus::shmbus) and
# a pkg-config file.
include(CMakePackageConfigHelpers)

install(TARGETS shmbus EXPORT shmbusTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES
  include/shmbus/config.hpp
  include/shmbus/error.hpp
  include/shmbus/raw.hpp
  include/shmbus/shmbus.hpp
  include/shmbus/topic.hpp
  include/shmbus/typed.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/shmbus)
install(FILES include/shmbus/detail/chunk_message.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/shmbus/detail)
install(EXPORT shmbusTargets NAMESPACE shmbus:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/shmbus)
configure_package_config_file(cmake/shmbusConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/shmbusConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/shmbus)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/shmbusConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/shmbusConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/shmbusConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/shmbus)
configure_file(cmake/shmbus.pc.in ${CMAKE_CURRENT_BINARY_DIR}/shmbus.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/shmbus.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
