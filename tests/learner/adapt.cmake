# Learner II tests: clustering, losses, EMA, augmentation, co-training (resume, tiny cycle),
# scale and constraints. One executable: the files share torch's precompiled header and, in a
# unity build, its instantiations (ctest still runs each test on its own).
add_executable(learner_adapt_test
  test_adapt_cluster.cpp test_adapt_losses.cpp test_adapt_cotrain.cpp test_adapt_mean_teacher.cpp
  test_adapt_scale.cpp test_adapt_constraints.cpp)
target_link_libraries(learner_adapt_test PRIVATE faceadapt_learner faceadapt_test_support GTest::gtest_main)
faceadapt_use_torch_pch(learner_adapt_test)
gtest_discover_tests(learner_adapt_test DISCOVERY_TIMEOUT 120 PROPERTIES TIMEOUT 600)
