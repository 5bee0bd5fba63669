# workers/torch (the libtorch C shim, the only C++ in the tree) and
# workers/text (tokenizer, vocabulary, TF-IDF: pure C, no libtorch).
#
#   ty_text   pure C: links anywhere (prepare, evaluate, convert workers)
#   ty_torch  the shim + ncf negative sampling; pulls in libtorch
#
# Debian's libtorch-dev puts TorchConfig.cmake in the multiarch cmake dir,
# which find_package searches by default; CMAKE_PREFIX_PATH or Torch_DIR
# override it for another libtorch.

add_library (ty_text STATIC workers/text/ty_tokenize.c workers/text/ty_tfidf.c)
target_include_directories (ty_text PUBLIC workers/text)
target_link_libraries (ty_text PUBLIC ty_common m)

find_package (Torch QUIET)
if (NOT Torch_FOUND)
    message (WARNING "libtorch not found (apt-get install libtorch-dev): ty_torch not built")
    return ()
endif ()

enable_language (CXX)
set (CMAKE_CXX_STANDARD 17)
set (CMAKE_CXX_STANDARD_REQUIRED ON)

add_library (ty_torch STATIC workers/torch/ty_torch.cpp workers/torch/ty_negsample.c)
target_include_directories (ty_torch PUBLIC workers/torch)
# TORCH_CXX_FLAGS carries the libstdc++ ABI define libtorch was built with.
separate_arguments (TY_TORCH_CXX_FLAGS UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options (ty_torch PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${TY_TORCH_CXX_FLAGS}>)
# libtorch's headers warn under -Wextra (unused parameters, deprecated
# copies): they are system headers to us.
target_include_directories (ty_torch SYSTEM PRIVATE ${TORCH_INCLUDE_DIRS})
target_link_libraries (ty_torch PUBLIC ty_common ${TORCH_LIBRARIES} ${CMAKE_DL_LIBS})
# C programs linking ty_torch need the C++ runtime at link time.
set_target_properties (ty_torch PROPERTIES LINKER_LANGUAGE CXX)

# bench/train_textclf.c: textclf throughput and accuracy (bench/train_compare
# runs it beside the fastText command and PyTorch). Here rather than in
# bench/CMakeLists.txt because it exists only when libtorch does.
add_executable (bench_train_textclf bench/train_textclf.c)
target_link_libraries (bench_train_textclf PRIVATE ty_torch ty_text)
set_target_properties (bench_train_textclf PROPERTIES LINKER_LANGUAGE CXX)

# bench/train_cnn.c: the cnn kind on the 8x8 digits (bench/train_cnn runs it
# beside the same network in PyTorch).
add_executable (bench_train_cnn bench/train_cnn.c)
target_link_libraries (bench_train_cnn PRIVATE ty_torch)
set_target_properties (bench_train_cnn PROPERTIES LINKER_LANGUAGE CXX)

# The written-out textclf step (SGD, lazy Adam) is plain loops over rows of
# dim floats: -O3's vectorizer turns them into SIMD code, which -O2 (gcc 12)
# leaves scalar for most of them.
set_source_files_properties (workers/torch/ty_torch.cpp PROPERTIES COMPILE_OPTIONS "-O3")
