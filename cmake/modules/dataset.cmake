# Datasets (issue 3): the LMDB dataset store, importers, validation, splits
# (storage/ty_dataset*, ty_import*, ty_validate*, ty_split*), and the
# dataset benchmark. Debian packages: deploy/deps/dataset.txt.
pkg_check_modules (LMDB REQUIRED IMPORTED_TARGET lmdb)
# stb_image / stb_image_resize / stb_image_write, compiled in Debian's libstb.
pkg_check_modules (STB REQUIRED IMPORTED_TARGET stb)
# sha256 for content hashes and source digests.
pkg_check_modules (LIBCRYPTO REQUIRED IMPORTED_TARGET libcrypto)

add_library (ty_dataset STATIC
    storage/ty_dataset.c
    storage/ty_split.c
    storage/ty_validate.c
    storage/ty_import.c
    storage/ty_import_csv.c
    storage/ty_import_lines.c
    storage/ty_import_image.c
    storage/ty_import_export.c)
target_include_directories (ty_dataset PUBLIC storage)
target_link_libraries (ty_dataset PUBLIC ty_common PkgConfig::LMDB PkgConfig::CJSON
                       PkgConfig::STB PkgConfig::LIBCRYPTO Threads::Threads m)

add_executable (bench_dataset bench/dataset_bench.c)
target_link_libraries (bench_dataset PRIVATE ty_dataset)
