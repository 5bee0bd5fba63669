# Tests of the scheduler (cmake/modules/scheduler.cmake).
#   unit_cron                 cron lines, fire times, DST (TZ set by the test)
#   integration_scheduler     real redis + broker + noop workers + the daemon:
#                             missed slots run once, two schedulers one run,
#                             kill -9 after submit one run, a trigger fires once
add_executable (test_cron unit/test_cron.c)
target_link_libraries (test_cron PRIVATE ty_sched PkgConfig::CMOCKA)
add_test (NAME unit_cron COMMAND test_cron)
set_tests_properties (unit_cron PROPERTIES LABELS unit TIMEOUT 60)

add_executable (test_scheduler integration/test_scheduler.c)
target_link_libraries (test_scheduler PRIVATE ty_sched ty_testenv trainyard_client ty_common
                       PkgConfig::HIREDIS PkgConfig::CMOCKA Threads::Threads)
add_dependencies (test_scheduler trainyard-broker trainyard-noop trainyard-scheduler trainyard)
add_test (NAME integration_scheduler COMMAND test_scheduler)
set_tests_properties (integration_scheduler PROPERTIES LABELS integration TIMEOUT 120)
# Where trainyard-scheduler is (TY_BIN_DIR in the environment overrides).
target_compile_definitions (test_scheduler PRIVATE TY_BIN_DIR="${CMAKE_BINARY_DIR}")
