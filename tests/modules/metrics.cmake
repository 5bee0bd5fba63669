# Unit tests of the metrics core (workers/evaluate/ty_metrics*, ty_gate,
# ty_analysis). test_metrics checks every metric against scikit-learn's
# answers stored in tests/fixtures/metrics/*.json (regenerate them with
# /usr/bin/python3 tests/fixtures/metrics/make_fixtures.py); no Python is
# needed to run it.
foreach (t metrics metrics_analysis gate)
    add_executable (test_${t} unit/test_${t}.c)
    target_link_libraries (test_${t} PRIVATE ty_metrics PkgConfig::CMOCKA)
    add_test (NAME unit_${t} COMMAND test_${t})
    set_tests_properties (unit_${t} PROPERTIES LABELS unit TIMEOUT 60)
endforeach ()
target_compile_definitions (test_metrics PRIVATE
    TY_METRICS_FIXTURES="${CMAKE_SOURCE_DIR}/tests/fixtures/metrics")
