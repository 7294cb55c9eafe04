# Installs the public headers and exports msgsdk::msgsdk for find_package(msgsdk).
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/msgsdk DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(MSGSDK_EXPORTED_TARGETS msgsdk msgsdk_core msgsdk_native_storage msgsdk_native_protocol
                            msgsdk_native_wire ${MSGSDK_BACKEND_TARGETS})
# With the sidecar transport, users' link lines need gRPC and Protobuf too.
set(MSGSDK_SIDECAR_DEPENDENCIES "")
if(TARGET msgsdk_sidecar_client)
  list(APPEND MSGSDK_EXPORTED_TARGETS msgsdk_sidecar_client msgsdk_sidecar_common
       msgsdk_sidecar_proto)
  set(MSGSDK_SIDECAR_DEPENDENCIES "find_dependency(Protobuf)\nfind_dependency(gRPC CONFIG)")
endif()
install(TARGETS ${MSGSDK_EXPORTED_TARGETS}
        EXPORT msgsdkTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT msgsdkTargets NAMESPACE msgsdk:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/msgsdk)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/msgsdkConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/msgsdkConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/msgsdk)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/msgsdkConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/msgsdkConfig.cmake ${PROJECT_BINARY_DIR}/msgsdkConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/msgsdk)
