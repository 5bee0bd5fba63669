# The five example workflows (examples/pipelines/) end to end on a real
# cluster: redis-server, the broker, prepare, 2 x train, evaluate, convert
# and control workers, the example data the project ships (issue 7).
if (NOT TARGET ty_pipeline OR NOT TARGET trainyard-train OR NOT TARGET trainyard-convert
    OR NOT TARGET trainyard-control)
    return ()
endif ()
add_executable (test_workflows integration/test_workflows.c)
target_link_libraries (test_workflows PRIVATE ty_pipeline ty_testenv trainyard_client ty_common
                       PkgConfig::HIREDIS PkgConfig::CMOCKA Threads::Threads)
target_compile_definitions (test_workflows PRIVATE TY_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
                            TY_TRAINYARD_BIN="$<TARGET_FILE:trainyard>")
add_dependencies (test_workflows trainyard trainyard-broker trainyard-prepare trainyard-train
                  trainyard-evaluate trainyard-convert trainyard-control)
add_test (NAME integration_workflows COMMAND test_workflows)
# training loads both cores: alone, so heartbeats are never starved
set_tests_properties (integration_workflows PROPERTIES LABELS integration TIMEOUT 900
                      RUN_SERIAL TRUE ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
