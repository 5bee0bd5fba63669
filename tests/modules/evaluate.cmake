# Tests of the evaluate worker (issue 5): a real redis, broker and
# trainyard-evaluate on real LMDB datasets and a textclf model version
# trained in-process with the train worker's code (ty_train_run).
#   evaluate   metrics.json equals a direct computation; a gate with one
#              failing threshold reports exactly that check and the job
#              succeeds; bad input fails with a clear message; the
#              `trainyard evaluate` report and `trainyard model compare`
if (NOT TARGET trainyard-evaluate OR NOT TARGET ty_train)
    return ()
endif ()

add_executable (test_evaluate integration/test_evaluate.c)
target_link_libraries (test_evaluate PRIVATE ty_fixture ty_testenv trainyard_client ty_evaluate ty_train
                       PkgConfig::HIREDIS PkgConfig::CMOCKA Threads::Threads m)
set_target_properties (test_evaluate PROPERTIES LINKER_LANGUAGE CXX)
target_compile_definitions (test_evaluate PRIVATE
    TY_TRAINYARD_BIN="$<TARGET_FILE:trainyard>")
add_dependencies (test_evaluate trainyard-broker trainyard-evaluate trainyard)
add_test (NAME integration_evaluate COMMAND test_evaluate)
# training and inference load both cores: alone, so heartbeats are never starved
set_tests_properties (integration_evaluate PROPERTIES LABELS integration TIMEOUT 180
                      RUN_SERIAL TRUE ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")

# evaluate_tasks: ty_evaluate_run in-process on multi-label (textclf),
# regression (mlp) and ranking (ncf) model versions, figures checked against
# direct computations; the latency benchmark on a counting callback.
add_executable (test_evaluate_tasks integration/test_evaluate_tasks.c)
target_link_libraries (test_evaluate_tasks PRIVATE ty_evaluate ty_train PkgConfig::CMOCKA m)
set_target_properties (test_evaluate_tasks PROPERTIES LINKER_LANGUAGE CXX)
add_test (NAME integration_evaluate_tasks COMMAND test_evaluate_tasks)
set_tests_properties (integration_evaluate_tasks PROPERTIES LABELS integration TIMEOUT 120
                      RUN_SERIAL TRUE ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
