# The model registry (issue 6): storage/ty_registry, one LMDB environment at
# <data>/registry/ with stages, rollback and the audit log; linked into the
# `trainyard` command for `trainyard model list|show|promote|...`.
# sha256 of artifacts comes from libcrypto. dataset.cmake (included before
# this file) already looked up LMDB and libcrypto; look them up here too
# when it did not, so this module stands alone.
if (NOT TARGET PkgConfig::LMDB)
    pkg_check_modules (LMDB REQUIRED IMPORTED_TARGET lmdb)
endif ()
if (NOT TARGET PkgConfig::LIBCRYPTO)
    pkg_check_modules (LIBCRYPTO REQUIRED IMPORTED_TARGET libcrypto)
endif ()

add_library (ty_registry STATIC storage/ty_registry.c)
target_include_directories (ty_registry PUBLIC storage)
target_link_libraries (ty_registry PUBLIC ty_common PkgConfig::LMDB PkgConfig::CJSON
                       PkgConfig::LIBCRYPTO)

target_link_libraries (trainyard PRIVATE ty_registry)
