# taskhost_add_plugin(NAME SOURCES src... [OUTPUT_DIR dir])
#
# Builds a taskhost plugin: a MODULE library exporting only its entry point. Hidden visibility keeps the
# plugin's symbols from clashing with the host's or another plugin's; -fno-gnu-unique keeps dlclose able
# to unload it (a STB_GNU_UNIQUE symbol pins a library in memory forever). No "lib" prefix, so the file is
# NAME.so.
function(taskhost_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIR" "SOURCES" ${ARGN})
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE taskhost::plugin_sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-gnu-unique>)
  endif()
  if(NOT APPLE)
    target_link_options(${name} PRIVATE -Wl,--no-undefined -Wl,-z,defs)
  endif()
  if(ARG_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  endif()
endfunction()
