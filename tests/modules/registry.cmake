# Tests of the model registry (cmake/modules/registry.cmake): real LMDB in
# temp dirs, including a child process killed with SIGKILL mid-promote.
add_executable (test_registry unit/test_registry.c)
target_link_libraries (test_registry PRIVATE ty_registry PkgConfig::CMOCKA)
add_test (NAME unit_registry COMMAND test_registry)
set_tests_properties (unit_registry PROPERTIES LABELS unit TIMEOUT 120)
