# The fixture library of the model-training integration tests (convert,
# evaluate, train, kfold): in-process training, the "mail" dataset, one
# worker in a real cluster, JSON files (tests/harness/ty_fixture.h). It
# trains with ty_train, so like those tests it exists only where ty_train
# (libtorch, LMDB) does.
if (NOT TARGET ty_train)
    return ()
endif ()

add_library (ty_fixture STATIC harness/ty_fixture.c)
target_include_directories (ty_fixture PUBLIC harness)
target_link_libraries (ty_fixture PUBLIC ty_testenv trainyard_client ty_train ty_dataset
                       PkgConfig::HIREDIS PkgConfig::CMOCKA PkgConfig::CJSON m)
