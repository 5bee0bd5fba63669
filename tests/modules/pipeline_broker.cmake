# The broker side of pipelines (issue 7): step names, list by pipeline,
# with_spec, parent outputs passed as ASSIGN inputs (also across a kill -9 of
# the broker and to a child submitted after its parent succeeded), resource
# matching at dispatch. Real redis-server and broker; the test speaks the
# protocol itself as client and worker (plus one trainyard-noop).
add_executable (test_pipeline_broker integration/test_pipeline_broker.c)
target_link_libraries (test_pipeline_broker PRIVATE ty_testenv trainyard_client ty_common
                       PkgConfig::ZMQ PkgConfig::HIREDIS PkgConfig::CMOCKA Threads::Threads)
add_dependencies (test_pipeline_broker trainyard-broker trainyard-noop)
add_test (NAME integration_pipeline_broker COMMAND test_pipeline_broker)
set_tests_properties (integration_pipeline_broker PROPERTIES LABELS integration TIMEOUT 120)
