# Installation of kv's programs and service files, and the Debian packages (CPack DEB):
#   kv               kvd, kvctl, the systemd unit, sysusers.d file, /etc/kv/kvd.conf (a conffile),
#                    man pages (help2man, from --help); maintainer scripts in cmake/deb/
#   libkvclient0     libkvclient.so.0 (installed by libkvclient/CMakeLists.txt)
#   libkvclient-dev  headers, libkvclient.so, CMake package, kvclient.pc (libkvclient/)
#   python3-kv       the Python module and its C extension (python/)
# `cmake --install build` installs them all; `cpack --config build/CPackConfig.cmake` (or
# scripts/package.sh) builds the .deb files. Paths: the unit names /usr/bin/kvd, so packages
# use the prefix /usr.
include(GNUInstallDirs)

install(TARGETS kvd kvctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT kv)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/kvd.service DESTINATION lib/systemd/system
  COMPONENT kv)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/kv.sysusers DESTINATION lib/sysusers.d
  RENAME kv.conf COMPONENT kv)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/kvd.conf DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/kv
  COMPONENT kv)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT kv)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT kv)

# Man pages from the programs' own --help and --version (help2man), so they never drift. Not in
# sanitizer builds (packages are made from the normal build; a sanitizer report would fail it).
if(NOT KV_SANITIZE)
  find_program(KV_HELP2MAN help2man REQUIRED)
  set(KV_MAN_DIR ${PROJECT_BINARY_DIR}/man)
  add_custom_command(OUTPUT ${KV_MAN_DIR}/kvd.8
    COMMAND ${CMAKE_COMMAND} -E make_directory ${KV_MAN_DIR}
    COMMAND ${KV_HELP2MAN} --no-info --section 8 --name "the kv supervisor daemon"
      --output ${KV_MAN_DIR}/kvd.8 $<TARGET_FILE:kvd>
    DEPENDS kvd VERBATIM)
  add_custom_command(OUTPUT ${KV_MAN_DIR}/kvctl.1
    COMMAND ${CMAKE_COMMAND} -E make_directory ${KV_MAN_DIR}
    COMMAND ${KV_HELP2MAN} --no-info --section 1 --name "administer and use a kv instance"
      --output ${KV_MAN_DIR}/kvctl.1 $<TARGET_FILE:kvctl>
    DEPENDS kvctl VERBATIM)
  add_custom_target(kv_man ALL DEPENDS ${KV_MAN_DIR}/kvd.8 ${KV_MAN_DIR}/kvctl.1)
  install(FILES ${KV_MAN_DIR}/kvd.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT kv)
  install(FILES ${KV_MAN_DIR}/kvctl.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT kv)
endif()

# CPack: one .deb per component.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_NAME kv)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "kv maintainers <kv@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "shared-memory key-value store for one Linux host")
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL kv libkvclient0 libkvclient-dev)
if(KV_PYTHON_COMPONENT)
  list(APPEND CPACK_COMPONENTS_ALL python3-kv)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# libkvclient.so.0 is ours (a Depends: of its own below): dpkg-shlibdeps finds it in the build.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR}/libkvclient)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS OFF)

set(CPACK_DEBIAN_KV_PACKAGE_NAME kv)
set(CPACK_DEBIAN_KV_PACKAGE_SECTION database)
set(CPACK_DEBIAN_KV_PACKAGE_DEPENDS "libkvclient0 (= ${PROJECT_VERSION}), systemd, init-system-helpers (>= 1.54~)")
set(CPACK_DEBIAN_KV_DESCRIPTION "shared-memory key-value store for one host: kvd and kvctl
kvd supervises one worker process per bucket; clients read buckets straight from
shared memory. Includes the systemd service (enabled on installation) and kvctl.")
set(CPACK_DEBIAN_KV_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/cmake/deb/postinst
  ${PROJECT_SOURCE_DIR}/cmake/deb/prerm ${PROJECT_SOURCE_DIR}/cmake/deb/postrm
  ${PROJECT_SOURCE_DIR}/cmake/deb/conffiles)
set(CPACK_DEBIAN_KV_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_LIBKVCLIENT0_PACKAGE_NAME libkvclient0)
set(CPACK_DEBIAN_LIBKVCLIENT0_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_LIBKVCLIENT0_DESCRIPTION "client library of kv (shared library)
libkvclient.so.0: the C++ and C API of kv, a shared-memory key-value store.")
set(CPACK_DEBIAN_LIBKVCLIENT0_PACKAGE_GENERATE_SHLIBS ON)

set(CPACK_DEBIAN_LIBKVCLIENT-DEV_PACKAGE_NAME libkvclient-dev)
set(CPACK_DEBIAN_LIBKVCLIENT-DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_LIBKVCLIENT-DEV_PACKAGE_DEPENDS "libkvclient0 (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_LIBKVCLIENT-DEV_DESCRIPTION "client library of kv (development files)
Headers, CMake package (find_package(kvclient)) and pkg-config file of libkvclient.")

set(CPACK_DEBIAN_PYTHON3-KV_PACKAGE_NAME python3-kv)
set(CPACK_DEBIAN_PYTHON3-KV_PACKAGE_SECTION python)
# Architecture-dependent (the extension kv._native), built for the python3 found at configure time
# (Debian's), so it depends on that minor version as dh_python3 would have it.
math(EXPR KV_PYTHON3_NEXT_MINOR "${Python3_VERSION_MINOR} + 1")
set(CPACK_DEBIAN_PYTHON3-KV_PACKAGE_DEPENDS "libkvclient0 (= ${PROJECT_VERSION}), python3 (>= ${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}~), python3 (<< ${Python3_VERSION_MAJOR}.${KV_PYTHON3_NEXT_MINOR}), python3-cffi-backend, python3-cffi")
set(CPACK_DEBIAN_PYTHON3-KV_DESCRIPTION "Python module of kv
import kv: buckets, get/put/delete/cas/incr/scan, async writes, subscriptions,
over libkvclient's C ABI (a C extension for reads, cffi for the rest).")
include(CPack)
