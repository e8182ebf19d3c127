# Learner II benchmarks: clustering scale (bench_cluster).
add_executable(bench_cluster bench_cluster.cpp)
target_include_directories(bench_cluster PRIVATE ${PROJECT_SOURCE_DIR}/tests/learner)
target_link_libraries(bench_cluster PRIVATE faceadapt_learner)
