# libtrainyard-infer (infer/) and the portable model writer
# (workers/convert/ty_portable).
#
#   unit_infer             links ONLY trainyard_infer + cmocka: the runtime
#                          needs nothing beyond libc and libm. Hand-built
#                          files: predictions, corrupt files.
#   unit_infer_c99         the runtime's sources compile as strict C99
#                          without _GNU_SOURCE (the top level defines it).
#   unit_portable          libtorch models of each kind -> model.tym ->
#                          the runtime; outputs within 1e-5, tokenizer ids
#                          equal, truncated / lying files refused.
if (TARGET trainyard_infer)
    add_executable (test_infer unit/test_infer.c)
    target_link_libraries (test_infer PRIVATE trainyard_infer PkgConfig::CMOCKA)
    add_test (NAME unit_infer COMMAND test_infer)
    set_tests_properties (unit_infer PROPERTIES LABELS unit TIMEOUT 60)

    add_test (NAME unit_infer_c99
        COMMAND ${CMAKE_C_COMPILER} -std=c99 -pedantic-errors -Wall -Wextra -Werror
                -fsyntax-only ${CMAKE_SOURCE_DIR}/infer/ty_infer.c
                ${CMAKE_SOURCE_DIR}/infer/ty_infer_text.c ${CMAKE_SOURCE_DIR}/infer/ty_infer_net.c)
    set_tests_properties (unit_infer_c99 PROPERTIES LABELS unit TIMEOUT 60)
endif ()

# ty_portable_fixture: the helpers the portable-model tests share (temp
# directory, small libtorch models, a model version directory, the
# runtime's files, the fortunes sample), here and in onnx.cmake (test_onnx;
# this module comes first in the glob). Its users link ty_portable or
# ty_onnx, which both link ty_train and exist only where it does (libtorch
# and the dataset library: cmake/modules/train.cmake).
if (TARGET ty_train)
    add_library (ty_portable_fixture STATIC unit/ty_portable_fixture.c)
    target_include_directories (ty_portable_fixture PUBLIC unit)
    target_link_libraries (ty_portable_fixture PUBLIC ty_train ty_torch ty_text trainyard_infer
        ty_common PkgConfig::CMOCKA)
endif ()

if (TARGET ty_portable)
    add_executable (test_portable unit/test_portable.c)
    target_link_libraries (test_portable PRIVATE ty_portable ty_portable_fixture PkgConfig::CMOCKA m)
    set_target_properties (test_portable PROPERTIES LINKER_LANGUAGE CXX)
    add_test (NAME unit_portable COMMAND test_portable)
    set_tests_properties (unit_portable PROPERTIES LABELS unit TIMEOUT 120
        ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
endif ()

# The runtime under valgrind on valid and corrupt files: no leak, no
# invalid read. Not in the sanitizer build (ASan and valgrind exclude each
# other).
find_program (TY_VALGRIND valgrind)
if (TARGET trainyard_infer AND TY_VALGRIND AND NOT TY_SANITIZE)
    add_test (NAME unit_infer_valgrind
        COMMAND ${TY_VALGRIND} -q --error-exitcode=1 --leak-check=full
                --errors-for-leak-kinds=definite,indirect $<TARGET_FILE:test_infer>)
    set_tests_properties (unit_infer_valgrind PROPERTIES LABELS unit TIMEOUT 120)
endif ()

# FP16 / INT8 files and textclf pruning: each kind against its FP32 file,
# textclf on the shipped fortunes sample (agreement, size), the number
# formats (binary16 rounding, per-row INT8, norm pruning).
if (TARGET ty_portable)
    add_executable (test_portable_quant unit/test_portable_quant.c)
    target_link_libraries (test_portable_quant PRIVATE ty_portable ty_portable_fixture PkgConfig::CMOCKA m)
    target_compile_definitions (test_portable_quant PRIVATE TY_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
    set_target_properties (test_portable_quant PROPERTIES LINKER_LANGUAGE CXX)
    add_test (NAME unit_portable_quant COMMAND test_portable_quant)
    set_tests_properties (unit_portable_quant PROPERTIES LABELS unit TIMEOUT 120
        ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
endif ()

# A pruned or smaller textclf retrained (workers/convert/ty_retrain) and
# written with its row map: the runtime equals libtorch on the kept rows,
# retraining beats norm pruning on the fortunes sample.
if (TARGET ty_portable)
    add_executable (test_portable_retrain unit/test_portable_retrain.c)
    target_link_libraries (test_portable_retrain PRIVATE ty_portable ty_portable_fixture PkgConfig::CMOCKA m)
    target_compile_definitions (test_portable_retrain PRIVATE TY_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
    set_target_properties (test_portable_retrain PROPERTIES LINKER_LANGUAGE CXX)
    add_test (NAME unit_portable_retrain COMMAND test_portable_retrain)
    set_tests_properties (unit_portable_retrain PROPERTIES LABELS unit TIMEOUT 120
        ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
endif ()
