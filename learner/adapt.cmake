# Learner II: clustering, losses, EMA, training views and augmentation, the co-trainer.
target_sources(faceadapt_learner PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/src/cluster.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/constraints.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/site_snapshot.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/site_simulation.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/losses.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/ema.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/chip_source.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/training_sample.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/training_data.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/cotrainer.cpp)
# The fused optimiser (mean_teacher_adam.cpp) and its loop (fused_adam.cpp, torch-free): a
# vectorised sqrt (no errno), an `omp simd` penalty reduction, and no compiler-contracted
# multiply-adds (it rounds exactly as torch's ops do).
target_sources(faceadapt_learner PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src/mean_teacher_adam.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/fused_adam.cpp)
set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/src/fused_adam.cpp PROPERTIES
  COMPILE_OPTIONS "-fopenmp-simd;-fno-math-errno;-ffp-contract=off")
