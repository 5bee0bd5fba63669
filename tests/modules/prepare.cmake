# Integration test of the prepare worker and `trainyard dataset` (real
# redis-server, broker, trainyard-prepare workers, LMDB in the temp dir).
# RUN_SERIAL: its kill -9 scenario imports 200 k rows twice and must not
# starve the other clusters' heartbeats.
add_executable (test_prepare integration/test_prepare.c)
target_link_libraries (test_prepare PRIVATE ty_testenv trainyard_client ty_dataset ty_common
                       PkgConfig::HIREDIS PkgConfig::CMOCKA PkgConfig::CJSON Threads::Threads)
target_compile_definitions (test_prepare PRIVATE TY_BIN_DIR="${CMAKE_BINARY_DIR}")
add_dependencies (test_prepare trainyard-broker trainyard-prepare trainyard)
add_test (NAME integration_prepare COMMAND test_prepare)
set_tests_properties (integration_prepare PROPERTIES LABELS integration TIMEOUT 240 RUN_SERIAL TRUE)
