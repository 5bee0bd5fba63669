# Tests of workers/text (tokenizer, vocabulary, TF-IDF) and workers/torch
# (the libtorch shim: each model kind learns; determinism, save/load, resume,
# bad input). Real libtorch, 1 thread; each a few seconds.
if (TARGET ty_text)
    add_executable (test_tokenize unit/test_tokenize.c)
    target_link_libraries (test_tokenize PRIVATE ty_text PkgConfig::CMOCKA)
    add_test (NAME unit_tokenize COMMAND test_tokenize)
    set_tests_properties (unit_tokenize PROPERTIES LABELS unit TIMEOUT 60)
endif ()

if (TARGET ty_torch)
    foreach (t torch_models torch_state)
        add_executable (test_${t} unit/test_${t}.c)
        target_link_libraries (test_${t} PRIVATE ty_torch ty_text PkgConfig::CMOCKA m)
        set_target_properties (test_${t} PROPERTIES LINKER_LANGUAGE CXX)
        add_test (NAME unit_${t} COMMAND test_${t})
        # One intra-op thread as in production; OpenBLAS in line with it.
        set_tests_properties (unit_${t} PROPERTIES LABELS unit TIMEOUT 120
            ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
    endforeach ()
endif ()
