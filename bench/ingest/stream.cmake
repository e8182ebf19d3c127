# bench_cameras: cameras sustained at detect 5 fps and CPU per camera beside bare decode.
add_executable(bench_cameras bench_cameras.cpp)
target_link_libraries(bench_cameras PRIVATE faceadapt_ingest faceadapt_rtsp_test_server faceadapt_config PkgConfig::GST spdlog::spdlog)
target_compile_definitions(bench_cameras PRIVATE FACEADAPT_SHARED_DIR="${FACEADAPT_SHARED_DIR}")
