# Learner II tests: clustering, losses, EMA, augmentation, co-training (resume, tiny cycle).
add_executable(test_adapt_cluster test_adapt_cluster.cpp)
target_link_libraries(test_adapt_cluster PRIVATE faceadapt_learner faceadapt_test_support GTest::gtest_main)
gtest_discover_tests(test_adapt_cluster DISCOVERY_TIMEOUT 120)
add_executable(test_adapt_losses test_adapt_losses.cpp)
target_link_libraries(test_adapt_losses PRIVATE faceadapt_learner faceadapt_test_support GTest::gtest_main)
gtest_discover_tests(test_adapt_losses DISCOVERY_TIMEOUT 120)
