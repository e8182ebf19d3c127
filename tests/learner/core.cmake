# Learner I tests (issue 3): network + import + Embedder, model files, eval metrics, CLI.
add_executable(learner_core_test
  ${CMAKE_CURRENT_LIST_DIR}/test_core_network.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_core_model_file.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_core_model_archive.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_core_eval.cpp)
target_include_directories(learner_core_test PRIVATE ${PROJECT_SOURCE_DIR}/learner/src)
target_link_libraries(learner_core_test PRIVATE faceadapt_learner faceadapt_common faceadapt_test_support GTest::gtest_main)
faceadapt_use_torch_pch(learner_core_test)
gtest_discover_tests(learner_core_test DISCOVERY_TIMEOUT 120)

# The CLI (tools/faceadapt) exists only in the full build.
if(NOT FACEADAPT_LEARNER_ONLY)
  add_executable(learner_core_cli_test ${CMAKE_CURRENT_LIST_DIR}/test_core_cli.cpp)
  target_link_libraries(learner_core_cli_test PRIVATE faceadapt_common faceadapt_test_support GTest::gtest_main
    nlohmann_json::nlohmann_json)
  add_dependencies(learner_core_cli_test faceadapt)
  gtest_discover_tests(learner_core_cli_test DISCOVERY_TIMEOUT 120)
endif()
