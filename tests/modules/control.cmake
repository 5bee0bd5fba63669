# Tests of the runtime side of pipelines (issue 7):
#   unit_subst      ${step.key} over a protobuf-c message: nested messages,
#                   map values, repeated strings, escapes, the unresolved
#                   message, untouched specs
#   unit_when       every operator, numbers vs strings, malformed conditions
#   integration_control
#                   the worker runtime against a ROUTER in the test (ASSIGN
#                   with inputs: substitution, when-skip, failures) and the
#                   control actions on real LMDB registries; with the broker
#                   filling Assign.inputs, the end-to-end pipeline run
foreach (t subst when)
    add_executable (test_${t} unit/test_${t}.c)
    target_link_libraries (test_${t} PRIVATE ty_runtime PkgConfig::CMOCKA)
    add_test (NAME unit_${t} COMMAND test_${t})
    set_tests_properties (unit_${t} PROPERTIES LABELS unit TIMEOUT 30)
endforeach ()

if (NOT TARGET trainyard-control)
    return ()
endif ()
add_executable (test_control integration/test_control.c)
target_link_libraries (test_control PRIVATE ty_testenv trainyard_client ty_control ty_runtime
                       ty_registry PkgConfig::HIREDIS PkgConfig::CMOCKA PkgConfig::CJSON
                       Threads::Threads m)
target_compile_definitions (test_control PRIVATE TY_CONTROL_BIN="$<TARGET_FILE:trainyard-control>")
add_dependencies (test_control trainyard-broker trainyard-noop trainyard-control)
add_test (NAME integration_control COMMAND test_control)
set_tests_properties (integration_control PROPERTIES LABELS integration TIMEOUT 90)
