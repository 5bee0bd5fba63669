# Training (issue 4): the train job library and the trainyard-train worker.
#
#   ty_train        the job (ty_train), sample -> batch encoding and the
#                   featurizer (ty_batch), checkpoints (ty_checkpoint), model
#                   version directories (ty_modeldir). The evaluate and
#                   convert workers link it to load a model version and encode
#                   samples exactly as training did.
#   trainyard-train the worker executable.
#
# `trainyard train` (client/cmd_train.c, compiled into the trainyard command
# by the top level's cmd_*.c glob) reads YAML configs with libyaml.
pkg_check_modules (YAML REQUIRED IMPORTED_TARGET yaml-0.1)
target_link_libraries (trainyard PRIVATE PkgConfig::YAML)

# Needs ty_torch (libtorch) and ty_dataset (LMDB); without them nothing here
# is built.
if (NOT TARGET ty_torch OR NOT TARGET ty_dataset OR NOT TARGET ty_text)
    message (WARNING "train: ty_torch, ty_text or ty_dataset missing: trainyard-train not built")
    return ()
endif ()

add_library (ty_train STATIC
    workers/train/ty_train.c
    workers/train/ty_batch.c
    workers/train/ty_checkpoint.c
    workers/train/ty_modeldir.c)
target_include_directories (ty_train PUBLIC workers/train)
target_link_libraries (ty_train PUBLIC ty_torch ty_text ty_dataset ty_common PkgConfig::CJSON m)

add_executable (trainyard-train workers/train/main.c)
target_link_libraries (trainyard-train PRIVATE ty_train ty_runtime ty_registry ty_portable)
set_target_properties (trainyard-train PROPERTIES LINKER_LANGUAGE CXX)
install (TARGETS trainyard-train RUNTIME DESTINATION bin)
