# trainyard-control, the worker of the pipeline control steps (promote,
# aggregate; issue 7). The runtime's side of pipelines (ty_subst, ty_when)
# is in ty_runtime itself (top-level CMakeLists.txt).

# ty_registry is defined by registry.cmake, included after this file (name
# order): linked by name, resolved when the build is generated.
if (NOT TARGET PkgConfig::LMDB)
    pkg_check_modules (LMDB QUIET IMPORTED_TARGET lmdb)
endif ()
if (NOT TARGET PkgConfig::LMDB)
    message (WARNING "control: LMDB missing: trainyard-control not built")
    return ()
endif ()

add_library (ty_control STATIC workers/control/ty_control.c)
target_include_directories (ty_control PUBLIC workers/control)
target_link_libraries (ty_control PUBLIC ty_runtime ty_registry PkgConfig::CJSON m)

add_executable (trainyard-control workers/control/main.c)
target_link_libraries (trainyard-control PRIVATE ty_control ty_runtime)
install (TARGETS trainyard-control RUNTIME DESTINATION bin)
