# Learner I benchmarks (issue 3).
add_executable(bench_embed ${CMAKE_CURRENT_LIST_DIR}/bench_embed.cpp)
target_link_libraries(bench_embed PRIVATE faceadapt_learner)
faceadapt_use_torch_pch(bench_embed)
