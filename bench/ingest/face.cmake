# bench_face_stage: motion-gated vs full-frame HOG face stage on walkers-1080p.mp4.
add_executable(bench_face_stage bench_face_stage.cpp)
target_link_libraries(bench_face_stage PRIVATE faceadapt_ingest faceadapt_config opencv_videoio)
target_compile_definitions(bench_face_stage PRIVATE FACEADAPT_SHARED_DIR="${FACEADAPT_SHARED_DIR}")
