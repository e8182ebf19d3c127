# Learner II: clustering, losses, EMA, training views and augmentation, the co-trainer.
target_sources(faceadapt_learner PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/src/cluster.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/losses.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/ema.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/training_data.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/cotrainer.cpp)
