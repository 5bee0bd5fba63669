# Portable models (issue 6, part 1):
#
#   trainyard_infer  libtrainyard-infer: loads model.tym (docs/model-format.md)
#                    and predicts. C99, libc + libm only, so it builds for a
#                    Raspberry Pi without anything else of trainyard; its
#                    tests link it alone to keep it that way.
#   ty_portable      the writer: a model version directory -> model.tym, in
#                    FP32, FP16 or INT8 (ty_quantize), textclf pruning.
#                    Links the libtorch shim and the featurizer (ty_train).
#                    With ty_retrain: pruned / smaller textclf retrained.
add_library (trainyard_infer STATIC
    infer/ty_infer.c
    infer/ty_infer_text.c
    infer/ty_infer_net.c)
target_include_directories (trainyard_infer PUBLIC infer)
set_target_properties (trainyard_infer PROPERTIES
    C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_options (trainyard_infer PRIVATE -pedantic)
target_link_libraries (trainyard_infer PUBLIC m)
# The hot loops (embedding-bag sums, dot products) vectorise at -O3 only:
# GCC 12's -O2 cost model refuses loops of unknown trip count.
if (NOT CMAKE_BUILD_TYPE STREQUAL "Debug")
    set_source_files_properties (infer/ty_infer_net.c PROPERTIES COMPILE_OPTIONS -O3)
endif ()

# The writer links ty_train and ty_torch, whose modules (train.cmake,
# torch.cmake) come after this one: check what they need (libtorch, the
# dataset library) instead of their targets, which do not exist yet.
find_package (Torch QUIET)
if (NOT Torch_FOUND OR NOT TARGET ty_dataset)
    message (WARNING "infer: libtorch or ty_dataset missing: ty_portable not built")
    return ()
endif ()
# ty_retrain (a pruned or smaller textclf trained again, for the convert
# job and bench/infer) needs only the shim and ty_quantize: it lives here.
add_library (ty_portable STATIC workers/convert/ty_portable.c workers/convert/ty_quantize.c
    workers/convert/ty_retrain.c)
target_include_directories (ty_portable PUBLIC workers/convert)
target_link_libraries (ty_portable PUBLIC ty_train ty_torch ty_text trainyard_infer ty_common)
set_target_properties (ty_portable PROPERTIES LINKER_LANGUAGE CXX)

# `trainyard predict` reads portable models as a device would.
target_link_libraries (trainyard PRIVATE trainyard_infer)
