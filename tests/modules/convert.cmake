# Tests of the convert worker (issue 6, part 3): a real redis, broker and
# trainyard-convert on a real LMDB dataset and a textclf model version
# trained in-process with the train worker's code (ty_train_run).
#   convert   fp32 then int8 (when the quantizing writer is built): artifact,
#             report (accuracy change, size ratio, latency), registry digest;
#             bad input (unknown model, unknown target, corrupt model.pt)
#             fails with a clear message and leaves the version untouched;
#             `trainyard convert` and the `model export` round trip
if (NOT TARGET trainyard-convert OR NOT TARGET ty_train)
    return ()
endif ()

add_executable (test_convert integration/test_convert.c)
target_link_libraries (test_convert PRIVATE ty_fixture ty_testenv trainyard_client ty_convert ty_train
                       ty_registry ty_dataset trainyard_infer
                       PkgConfig::HIREDIS PkgConfig::CMOCKA Threads::Threads m)
set_target_properties (test_convert PROPERTIES LINKER_LANGUAGE CXX)
target_compile_definitions (test_convert PRIVATE
    TY_TRAINYARD_BIN="$<TARGET_FILE:trainyard>")
add_dependencies (test_convert trainyard-broker trainyard-convert trainyard)
add_test (NAME integration_convert COMMAND test_convert)
# training and inference load both cores: alone, so heartbeats are never starved
set_tests_properties (integration_convert PROPERTIES LABELS integration TIMEOUT 180
                      RUN_SERIAL TRUE ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
