# The convert worker (issue 6, part 3): a model version -> fp32 / fp16 / int8
# portable files or ONNX, measured against fp32 (workers/convert/ty_convert.h).
#
#   ty_convert         the job (ty_convert.c) and the fp32-vs-converted
#                      comparison through libtrainyard-infer (ty_convert_eval.c)
#   trainyard-convert  the worker executable
#
# `trainyard convert` (client/cmd_convert.c) and `trainyard model export`
# (client/cmd_model.c) are in the trainyard command; they need nothing beyond
# what it links already (registry, libtrainyard-infer, ty_dataset for sha256).
#
# Modules are included in name order, so every library this links (ty_dataset,
# ty_evaluate, ty_portable, ty_train, ty_torch, trainyard_infer, ty_registry)
# is defined by a later module: link them by name (resolved when the build is
# generated) and check here what they need instead (libtorch).
target_sources (trainyard PRIVATE client/cmd_convert.c)

find_package (Torch QUIET)
if (NOT Torch_FOUND)
    message (WARNING "convert: libtorch missing: trainyard-convert not built")
    return ()
endif ()

# The quantizing writer and the ONNX exporter are written alongside this
# worker; build in what exists (ty_convert_target_built says which).
set (TY_CONVERT_DEFS "")
file (READ ${CMAKE_SOURCE_DIR}/workers/convert/ty_portable.h TY_CONVERT_PORTABLE_H)
string (FIND "${TY_CONVERT_PORTABLE_H}" "ty_portable_convert_dir_opts" TY_CONVERT_OPTS_AT)
if (NOT TY_CONVERT_OPTS_AT EQUAL -1)
    list (APPEND TY_CONVERT_DEFS TY_CONVERT_HAVE_PORTABLE_OPTS)
endif ()
set (TY_CONVERT_ONNX_LIB "")
if (EXISTS ${CMAKE_SOURCE_DIR}/workers/convert/ty_onnx.h)
    list (APPEND TY_CONVERT_DEFS TY_CONVERT_HAVE_ONNX)
    set (TY_CONVERT_ONNX_LIB ty_onnx)      # cmake/modules/onnx.cmake
endif ()
# a writer's API landing in the header re-runs this check
set_property (DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
              ${CMAKE_SOURCE_DIR}/workers/convert/ty_portable.h)
message (STATUS "convert: writers built in: fp32 ${TY_CONVERT_DEFS}")

add_library (ty_convert STATIC
    workers/convert/ty_convert.c
    workers/convert/ty_convert_eval.c)
target_include_directories (ty_convert PUBLIC workers/convert)
target_compile_definitions (ty_convert PRIVATE ${TY_CONVERT_DEFS})
target_link_libraries (ty_convert PUBLIC ty_portable ${TY_CONVERT_ONNX_LIB} ty_evaluate ty_train ty_registry
                       ty_dataset trainyard_infer ty_common PkgConfig::CJSON m)
set_target_properties (ty_convert PROPERTIES LINKER_LANGUAGE CXX)

add_executable (trainyard-convert workers/convert/convert_main.c)
target_link_libraries (trainyard-convert PRIVATE ty_convert ty_runtime ty_torch)
set_target_properties (trainyard-convert PROPERTIES LINKER_LANGUAGE CXX)
install (TARGETS trainyard-convert RUNTIME DESTINATION bin)
