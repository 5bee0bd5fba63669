# Pipeline files (issue 7): pipeline/ty_pipeline*, YAML (libyaml) -> a
# validated, expanded DAG of jobs submitted as one atomic Submit; and the
# `trainyard pipeline` command. client/cmd_pipeline.c is already in the
# `trainyard` target (the top level globs client/cmd_*.c): only the link here.
pkg_check_modules (YAML REQUIRED IMPORTED_TARGET yaml-0.1)

add_library (ty_pipeline STATIC
    pipeline/ty_pipeline_parse.c pipeline/ty_pipeline_validate.c
    pipeline/ty_pipeline_expand.c pipeline/ty_pipeline_submit.c
    pipeline/ty_pipeline_remote.c)
target_include_directories (ty_pipeline PUBLIC pipeline)
target_link_libraries (ty_pipeline PUBLIC ty_common trainyard_client PkgConfig::YAML
                       PkgConfig::CJSON m)

target_link_libraries (trainyard PRIVATE ty_pipeline)
