# Learner II benchmarks: clustering scale (bench_cluster).
add_executable(bench_cluster bench_cluster.cpp)
target_include_directories(bench_cluster PRIVATE ${PROJECT_SOURCE_DIR}/tests/learner)
target_link_libraries(bench_cluster PRIVATE faceadapt_learner)
# The Yale B adaptation benchmark (scripts/bench-adapt; not a bench_* program: it runs for minutes).
add_executable(adapt_benchmark adapt_benchmark.cpp)
target_link_libraries(adapt_benchmark PRIVATE faceadapt_learner faceadapt_calib)
target_compile_definitions(adapt_benchmark PRIVATE FACEADAPT_SHARED_DIR="${FACEADAPT_SHARED_DIR}")
if(TARGET faceadapt_ingest)
  target_link_libraries(adapt_benchmark PRIVATE faceadapt_ingest)
  target_compile_definitions(adapt_benchmark PRIVATE FACEADAPT_HAVE_INGEST=1)
endif()
add_executable(bench_cotrain bench_cotrain.cpp)
target_link_libraries(bench_cotrain PRIVATE faceadapt_learner)
