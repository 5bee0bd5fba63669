# Tests of the train worker (issue 4): real LMDB datasets written by the
# tests, real libtorch, and for the cluster tests a real redis, broker and
# trainyard-train.
#   train_core     ty_train_run in-process: learns, determinism, resume after
#                  a crash (fork + _exit) bitwise, cancel, early stopping,
#                  bad input
#   train_kinds    ty_train_run in-process for cnn (learns, resumes bitwise
#                  with augmentation), ncf (HR@10 vs item popularity), mlp
#                  regression (MSE vs the mean), wrong sample type per kind
#   train          the worker in a cluster: learns and reports, cancel within
#                  a second, bad input fails the job, the worker survives;
#                  `trainyard train --config FILE.yaml` submits, watches, prints
#   train_resume   kill -9 of the worker after epoch 2 of 4: the retry starts
#                  at epoch 3 and ends with the uninterrupted run's weights
if (NOT TARGET ty_train)
    return ()
endif ()

add_executable (test_train_core integration/test_train_core.c)
target_link_libraries (test_train_core PRIVATE ty_fixture ty_train PkgConfig::CMOCKA)
set_target_properties (test_train_core PROPERTIES LINKER_LANGUAGE CXX)
add_test (NAME integration_train_core COMMAND test_train_core)
set_tests_properties (integration_train_core PROPERTIES LABELS integration TIMEOUT 120)
add_executable (test_train_kinds integration/test_train_kinds.c)
target_link_libraries (test_train_kinds PRIVATE ty_fixture ty_train PkgConfig::CMOCKA)
set_target_properties (test_train_kinds PROPERTIES LINKER_LANGUAGE CXX)
add_test (NAME integration_train_kinds COMMAND test_train_kinds)
set_tests_properties (integration_train_kinds PROPERTIES LABELS integration TIMEOUT 120)
# 100 jobs in one process, RSS stable (ctest -L slow)
add_test (NAME slow_train_no_leak COMMAND test_train_core slow)
set_tests_properties (slow_train_no_leak PROPERTIES LABELS slow TIMEOUT 300)

foreach (t train train_resume)
    add_executable (test_${t} integration/test_${t}.c)
    target_link_libraries (test_${t} PRIVATE ty_testenv trainyard_client ty_train ty_registry
                           PkgConfig::HIREDIS PkgConfig::CMOCKA Threads::Threads)
    set_target_properties (test_${t} PROPERTIES LINKER_LANGUAGE CXX)
    target_compile_definitions (test_${t} PRIVATE TY_CLI_BIN="$<TARGET_FILE:trainyard>")
    add_dependencies (test_${t} trainyard-broker trainyard-train trainyard)
    add_test (NAME integration_${t} COMMAND test_${t})
    # training loads both cores: alone, so heartbeats are never starved
    set_tests_properties (integration_${t} PROPERTIES LABELS integration TIMEOUT 120
                          RUN_SERIAL TRUE)
endforeach ()
