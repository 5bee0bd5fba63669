# Tests of pipeline files (cmake/modules/pipeline.cmake): parse, validate and
# expand with every error naming file:line and field (unit); a 4-step noop
# pipeline, a failing step and `pipeline retry` on a real cluster (integration).
add_executable (test_pipeline unit/test_pipeline.c)
target_link_libraries (test_pipeline PRIVATE ty_pipeline PkgConfig::CMOCKA)
add_test (NAME unit_pipeline COMMAND test_pipeline)
set_tests_properties (unit_pipeline PROPERTIES LABELS unit TIMEOUT 30)

add_executable (test_pipeline_run integration/test_pipeline_run.c)
target_link_libraries (test_pipeline_run PRIVATE ty_pipeline ty_testenv trainyard_client
                       ty_common PkgConfig::HIREDIS PkgConfig::CMOCKA Threads::Threads)
add_dependencies (test_pipeline_run trainyard-broker trainyard-noop trainyard)
add_test (NAME integration_pipeline_run COMMAND test_pipeline_run)
set_tests_properties (integration_pipeline_run PROPERTIES LABELS integration TIMEOUT 60)
