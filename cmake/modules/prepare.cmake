# trainyard-prepare (the prepare worker: dataset import and append) and the
# `trainyard dataset` command. Both use the dataset library ty_dataset
# (cmake/modules/dataset.cmake, included before this file: modules are
# included in name order).
if (NOT TARGET ty_dataset)
    message (FATAL_ERROR "prepare.cmake needs the ty_dataset library (cmake/modules/dataset.cmake)")
endif ()

add_executable (trainyard-prepare workers/prepare/main.c workers/prepare/ty_prepare.c)
target_include_directories (trainyard-prepare PRIVATE ${CMAKE_SOURCE_DIR}/workers/prepare)
target_link_libraries (trainyard-prepare PRIVATE ty_runtime ty_dataset PkgConfig::CJSON)
install (TARGETS trainyard-prepare RUNTIME DESTINATION bin)

# client/cmd_dataset.c is already in `trainyard` (the top level globs
# client/cmd_*.c); it reads the data directory through ty_dataset and takes
# the data-directory defaults from workers/prepare/ty_prepare.h (header only).
target_include_directories (trainyard PRIVATE ${CMAKE_SOURCE_DIR}/workers/prepare
                                              ${CMAKE_SOURCE_DIR}/workers)
target_link_libraries (trainyard PRIVATE ty_dataset)
