# Tests of the camera streams (CameraSource, FacePipeline, RtspTestServer, rtsp-serve). Real
# GStreamer and real RTSP on loopback: the test executable also runs the test camera server as
# a child process (`test_stream --serve ...`), so that tests can kill and restart it.
add_executable(test_stream
  test_stream_main.cpp
  test_stream_camera.cpp
  test_stream_faults.cpp
  test_stream_pipeline.cpp
  test_stream_server.cpp)
target_link_libraries(test_stream PRIVATE faceadapt_ingest faceadapt_rtsp_test_server faceadapt_test_support GTest::gtest
  PkgConfig::GST spdlog::spdlog)
gtest_discover_tests(test_stream DISCOVERY_TIMEOUT 120)

# Each camera's latest full picture as a small JPEG (FrameSnapshots: the console's snapshot).
add_executable(test_frame_snapshot test_frame_snapshot.cpp)
target_link_libraries(test_frame_snapshot PRIVATE faceadapt_ingest GTest::gtest_main ${OpenCV_LIBS})
gtest_discover_tests(test_frame_snapshot DISCOVERY_TIMEOUT 60)
