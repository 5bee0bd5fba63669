# ty_state's turn recording (issue 2's speed work): HSETs of one job in a
# turn joined into one command, in order with caller-built commands.
# Real redis-server.
add_executable (test_state_turn integration/test_state_turn.c)
target_link_libraries (test_state_turn PRIVATE ty_testenv ty_storage ty_common
                       PkgConfig::HIREDIS PkgConfig::CMOCKA Threads::Threads)
add_test (NAME integration_state_turn COMMAND test_state_turn)
set_tests_properties (integration_state_turn PROPERTIES LABELS integration TIMEOUT 60)
