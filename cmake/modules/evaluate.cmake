# Evaluation (issue 5): the evaluate job and worker, and the report the
# `trainyard` command prints.
#
#   ty_report          metrics.json (write, read) and its readable rendering;
#                      pure C + cJSON + ty_metrics, so the command links it
#                      without libtorch or LMDB
#   ty_evaluate        the job (ty_evaluate) and its latency benchmark
#                      (ty_latency); links ty_train for the model-dir layout
#                      and the featurizer, so samples are encoded as in training
#   trainyard-evaluate the worker executable
#
# The `trainyard` command (top-level CMakeLists) globs client/cmd_*.c, which
# includes cmd_evaluate.c and cmd_model.c: they need ty_report and libyaml
# (gate files), linked here. Debian packages: deploy/deps/evaluate.txt.
pkg_check_modules (YAML REQUIRED IMPORTED_TARGET yaml-0.1)

add_library (ty_report STATIC workers/evaluate/ty_report.c)
target_include_directories (ty_report PUBLIC workers/evaluate)
target_link_libraries (ty_report PUBLIC ty_metrics PkgConfig::CJSON m)

target_link_libraries (trainyard PRIVATE ty_report PkgConfig::YAML)

# Modules are included in name order, so train.cmake (ty_train) and
# torch.cmake come after this file: test what they need instead -- the
# dataset library (already defined) and libtorch -- and link ty_train by
# name (resolved when the build is generated).
find_package (Torch QUIET)
if (NOT Torch_FOUND OR NOT TARGET ty_dataset)
    message (WARNING "evaluate: libtorch or ty_dataset missing: trainyard-evaluate not built")
    return ()
endif ()

add_library (ty_evaluate STATIC workers/evaluate/ty_evaluate.c workers/evaluate/ty_latency.c)
target_include_directories (ty_evaluate PUBLIC workers/evaluate)
target_link_libraries (ty_evaluate PUBLIC ty_report ty_metrics ty_train ty_registry PkgConfig::CJSON m)

add_executable (trainyard-evaluate workers/evaluate/main.c)
target_link_libraries (trainyard-evaluate PRIVATE ty_evaluate ty_runtime ty_registry)
set_target_properties (trainyard-evaluate PROPERTIES LINKER_LANGUAGE CXX)
install (TARGETS trainyard-evaluate RUNTIME DESTINATION bin)

# bench: the evaluation rate of a textclf model on a 100 k-row test split and
# the in-job latency figures (bench/evaluate prints the metrics side).
add_executable (bench_evaluate_rate bench/evaluate_rate.c)
target_link_libraries (bench_evaluate_rate PRIVATE ty_evaluate ty_train)
set_target_properties (bench_evaluate_rate PROPERTIES LINKER_LANGUAGE CXX)
