# ONNX export (issue 6, part 2):
#
#   ty_onnx   a model version directory (or a live libtorch model) -> an
#             ONNX file, encoded with protobuf-c from proto/onnx.proto
#             (compiled into ty_common with the other schemas).
#
# Like ty_portable it links ty_train (feat.json) and ty_torch, whose modules
# (train.cmake, torch.cmake) come after this one in the glob: check what they
# need (libtorch, the dataset library) instead of their targets, which do not
# exist yet; target_link_libraries resolves the names at generate time.
find_package (Torch QUIET)
if (NOT Torch_FOUND OR NOT TARGET ty_dataset)
    message (WARNING "onnx: libtorch or ty_dataset missing: ty_onnx not built")
    return ()
endif ()
add_library (ty_onnx STATIC workers/convert/ty_onnx.c)
target_include_directories (ty_onnx PUBLIC workers/convert)
target_link_libraries (ty_onnx PUBLIC ty_train ty_torch ty_text ty_common PkgConfig::CJSON)
set_target_properties (ty_onnx PROPERTIES LINKER_LANGUAGE CXX)
