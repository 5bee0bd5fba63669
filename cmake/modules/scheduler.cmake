# The scheduler (issue 7, part 4): cron schedules and retrain triggers kept
# in Redis, and the trainyard-scheduler daemon that runs them through the
# pipeline library. `trainyard schedule|trigger` (client/cmd_schedule.c,
# cmd_trigger.c) link the same library.
#
# Included after dataset.cmake, pipeline*.cmake and registry.cmake (sorted
# by name), so ty_dataset, ty_registry and ty_pipeline exist when built.
add_library (ty_sched STATIC
    scheduler/ty_cron.c scheduler/ty_schedrec.c scheduler/ty_schedule.c
    scheduler/ty_trigger.c scheduler/ty_launch.c)
target_include_directories (ty_sched PUBLIC scheduler)
target_link_libraries (ty_sched PUBLIC ty_storage ty_dataset ty_registry trainyard_client
                       ty_common PkgConfig::CJSON)
if (TARGET ty_pipeline)
    target_link_libraries (ty_sched PUBLIC ty_pipeline)
else ()
    # Built before the pipeline library exists: runs fail with a clear error.
    target_compile_definitions (ty_sched PRIVATE TY_NO_PIPELINE)
endif ()

add_executable (trainyard-scheduler scheduler/main.c)
target_link_libraries (trainyard-scheduler PRIVATE ty_sched)
install (TARGETS trainyard-scheduler RUNTIME DESTINATION bin)

target_link_libraries (trainyard PRIVATE ty_sched)
