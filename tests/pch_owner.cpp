// Owns the suites' shared precompiled header (tests/CMakeLists.txt, taskhost_test_pch); no tests here.
