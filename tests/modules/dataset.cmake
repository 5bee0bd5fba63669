# Tests of the dataset store (cmake/modules/dataset.cmake): real LMDB in
# temp dirs. test_dataset_big (1 million rows) is labelled slow as well.
foreach (t dataset dataset_blocks dataset_import dataset_big)
    add_executable (test_${t} unit/test_${t}.c unit/ty_tmpdir.c)
    target_compile_definitions (test_${t} PRIVATE
        TY_TEST_DATA_DIR="${CMAKE_CURRENT_SOURCE_DIR}/data")
    target_link_libraries (test_${t} PRIVATE ty_dataset PkgConfig::CMOCKA Threads::Threads)
    add_test (NAME unit_${t} COMMAND test_${t})
endforeach ()
set_tests_properties (unit_dataset unit_dataset_blocks unit_dataset_import PROPERTIES LABELS unit TIMEOUT 120)
set_tests_properties (unit_dataset_big PROPERTIES LABELS "unit;slow" TIMEOUT 300)
