# Learner I tests (issue 3): network + import + Embedder, model files, eval metrics, CLI.
add_executable(learner_core_test
  ${CMAKE_CURRENT_LIST_DIR}/test_core_network.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_core_model_file.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_core_eval.cpp)
target_include_directories(learner_core_test PRIVATE ${PROJECT_SOURCE_DIR}/learner/src)
target_link_libraries(learner_core_test PRIVATE faceadapt_learner faceadapt_test_support GTest::gtest_main)
gtest_discover_tests(learner_core_test DISCOVERY_TIMEOUT 120)
