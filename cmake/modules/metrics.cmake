# ty_metrics: the evaluation metrics core (classification, multi-label,
# regression, ranking, latency), the quality gate and the post-training
# analysis. Pure C: libm and cJSON only, so the evaluate worker, the CLI and
# the benchmark can all link it without ZeroMQ or libtorch. It includes
# common/ty_error.h for the status codes (macros only, no link to ty_common).
add_library (ty_metrics STATIC
    workers/evaluate/ty_metrics.c
    workers/evaluate/ty_metrics_auc.c
    workers/evaluate/ty_metrics_reg.c
    workers/evaluate/ty_metrics_json.c
    workers/evaluate/ty_gate.c
    workers/evaluate/ty_analysis.c)
target_include_directories (ty_metrics
    PUBLIC ${CMAKE_SOURCE_DIR}/workers/evaluate ${CMAKE_SOURCE_DIR}/common)
target_link_libraries (ty_metrics PUBLIC PkgConfig::CJSON m)

# bench/evaluate drives this: the full metrics report on 100 k rows, timed.
add_executable (bench_evaluate_metrics ${CMAKE_SOURCE_DIR}/bench/evaluate_metrics.c)
target_link_libraries (bench_evaluate_metrics PRIVATE ty_metrics)
