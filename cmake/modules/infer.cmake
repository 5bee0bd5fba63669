# Portable models (issue 6, part 1):
#
#   trainyard_infer  libtrainyard-infer: loads model.tym (docs/model-format.md)
#                    and predicts. C99, libc + libm only, so it builds for a
#                    Raspberry Pi without anything else of trainyard; its
#                    tests link it alone to keep it that way.
#   ty_portable      the writer: a model version directory -> model.tym.
#                    Links the libtorch shim and the featurizer (ty_train).
add_library (trainyard_infer STATIC
    infer/ty_infer.c
    infer/ty_infer_text.c
    infer/ty_infer_net.c)
target_include_directories (trainyard_infer PUBLIC infer)
set_target_properties (trainyard_infer PROPERTIES
    C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_options (trainyard_infer PRIVATE -pedantic)
target_link_libraries (trainyard_infer PUBLIC m)

# The writer links ty_train and ty_torch, whose modules (train.cmake,
# torch.cmake) come after this one: check what they need (libtorch, the
# dataset library) instead of their targets, which do not exist yet.
find_package (Torch QUIET)
if (NOT Torch_FOUND OR NOT TARGET ty_dataset)
    message (WARNING "infer: libtorch or ty_dataset missing: ty_portable not built")
    return ()
endif ()
add_library (ty_portable STATIC workers/convert/ty_portable.c)
target_include_directories (ty_portable PUBLIC workers/convert)
target_link_libraries (ty_portable PUBLIC ty_train ty_torch ty_text trainyard_infer ty_common)
set_target_properties (ty_portable PROPERTIES LINKER_LANGUAGE CXX)

# `trainyard predict` reads portable models as a device would.
target_link_libraries (trainyard PRIVATE trainyard_infer)
