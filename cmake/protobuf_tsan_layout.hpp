// Force-included into every C++ translation unit of the TSan tree (see the root CMakeLists.txt).
//
// protobuf 3.21's map_field.h gives MapFieldBase two extra members when it sees __SANITIZE_THREAD__, but
// Debian's libprotobuf.so was built without them: TSan-compiled code touching a Struct's fields inline
// then disagrees with the library on the layout (maps iterate empty, inserts crash). Including the header
// once with the macro hidden pins the library's layout; the include guard keeps it for the whole TU.
#pragma once
#ifdef __cplusplus
#pragma push_macro("__SANITIZE_THREAD__")
#undef __SANITIZE_THREAD__
#include <google/protobuf/map_field.h>
#pragma pop_macro("__SANITIZE_THREAD__")
#endif
