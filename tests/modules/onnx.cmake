# ONNX export (workers/convert/ty_onnx): each model kind exported, checked
# with onnx.checker (Debian's python3-onnx, /usr/bin/python3: a python3 on
# PATH may be a pyenv without it) and run with onnxruntime-node against
# libtorch's outputs; bad model directories refused with no file left.
#
#   onnx_node_setup  fixture: npm install --ignore-scripts onnxruntime-node
#                    into the build tree, once per build dir (skipped when
#                    already there). --ignore-scripts: the install script
#                    only fetches GPU parts; the CPU runtime is in the
#                    package.
#   unit_onnx        the tests; exit 77 = skipped (python3-onnx or node
#                    missing, or onnxruntime-node could not be installed:
#                    then only the onnx.checker part ran), reported by ctest
#                    as "Skipped", never a pass.
if (NOT TARGET ty_onnx)
    return ()
endif ()

add_executable (test_onnx unit/test_onnx.c)
# ty_portable_fixture: tests/modules/infer.cmake.
target_link_libraries (test_onnx PRIVATE ty_onnx ty_portable_fixture PkgConfig::CMOCKA m)
set_target_properties (test_onnx PROPERTIES LINKER_LANGUAGE CXX)

set (TY_ONNX_NODE_DIR ${CMAKE_BINARY_DIR}/onnx_node)
find_program (TY_NODE node)
find_program (TY_NPM npm)
set (TY_ONNX_PY /usr/bin/python3)

if (TY_NODE AND TY_NPM)
    add_test (NAME onnx_node_setup
        COMMAND sh ${CMAKE_SOURCE_DIR}/tests/onnx/setup_node.sh ${TY_NPM} ${TY_ONNX_NODE_DIR})
    set_tests_properties (onnx_node_setup PROPERTIES LABELS unit TIMEOUT 300
        FIXTURES_SETUP onnx_node)
else ()
    set (TY_NODE /usr/bin/node)   # absent: the test says so and skips
endif ()

add_test (NAME unit_onnx COMMAND test_onnx)
set_tests_properties (unit_onnx PROPERTIES LABELS unit TIMEOUT 180
    SKIP_RETURN_CODE 77
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;TY_ONNX_PYTHON=${TY_ONNX_PY};TY_ONNX_NODE=${TY_NODE};TY_ONNX_SCRIPTS=${CMAKE_SOURCE_DIR}/tests/onnx;NODE_PATH=${TY_ONNX_NODE_DIR}/node_modules;TY_ONNX_UNAVAILABLE=${TY_ONNX_NODE_DIR}/UNAVAILABLE")
if (TY_NPM)
    set_tests_properties (unit_onnx PROPERTIES FIXTURES_REQUIRED onnx_node)
endif ()
