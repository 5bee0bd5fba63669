# Turns every DIR/*.lua into a C byte array in OUT: const char ty_lua_<name>[].
# Pure CMake, so the build needs no xxd.
file (GLOB files ${DIR}/*.lua)
list (SORT files)
set (text "/* generated from storage/lua by cmake/embed_lua.cmake: do not edit */\n")
foreach (f ${files})
    get_filename_component (name ${f} NAME_WE)
    file (READ ${f} hex HEX)
    string (REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
    string (APPEND text "static const char ty_lua_${name} [] = {${bytes}0x00};\n")
endforeach ()
file (WRITE ${OUT}.tmp "${text}")
file (RENAME ${OUT}.tmp ${OUT})
