# taskhost_add_plugin(NAME SOURCES src... [OUTPUT_DIR dir])
#
# Builds a taskhost plugin: a MODULE library exporting only its entry point. Hidden visibility keeps the
# plugin's symbols from clashing with the host's or another plugin's; the version script
# (taskhost-plugin.map, beside this file) also hides what headers force to default visibility, so the
# entry point is the only dynamic symbol; -fno-gnu-unique keeps dlclose able to unload it (a
# STB_GNU_UNIQUE symbol pins a library in memory forever). No "lib" prefix, so the file is NAME.so.
#
# This file is the one definition of the function: the in-tree build includes it from plugin-sdk/, and
# the installed TaskhostPluginSDKConfig.cmake includes the installed copy.
function(taskhost_add_plugin name)
  set(version_script ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/taskhost-plugin.map)
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
    target_link_options(${name} PRIVATE -Wl,--no-undefined -Wl,-z,defs
      "-Wl,--version-script=${version_script}")
    set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${version_script})
  endif()
  if(ARG_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  endif()
endfunction()
