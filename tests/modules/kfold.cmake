# Tests of k-fold cross-validation in the train and evaluate workers (issue 7,
# part 5): real LMDB datasets with fold numbers written by the test, real
# libtorch, and for the cluster part a real redis, broker, trainyard-train
# and trainyard-evaluate.
#   kfold   holdout_fold trains without the fold (counts, val accuracy 0 on a
#           fold of a class never seen, its words absent from the
#           vocabulary), records it in config/lineage, resumes bitwise from a
#           checkpoint; evaluate fold=i counts exactly fold i's samples and
#           says so; bad folds fail naming the dataset's fold count
if (NOT TARGET trainyard-evaluate OR NOT TARGET trainyard-train OR NOT TARGET ty_train)
    return ()
endif ()

add_executable (test_kfold integration/test_kfold.c)
target_link_libraries (test_kfold PRIVATE ty_fixture ty_testenv trainyard_client ty_train
                       PkgConfig::HIREDIS PkgConfig::CMOCKA PkgConfig::CJSON Threads::Threads m)
set_target_properties (test_kfold PROPERTIES LINKER_LANGUAGE CXX)
add_dependencies (test_kfold trainyard-broker trainyard-train trainyard-evaluate)
add_test (NAME integration_kfold COMMAND test_kfold)
# training loads both cores: alone, so heartbeats are never starved
set_tests_properties (integration_kfold PROPERTIES LABELS integration TIMEOUT 180
                      RUN_SERIAL TRUE ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
