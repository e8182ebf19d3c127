# Camera streams: CameraSource (GStreamer pipelines with reconnects), frame queues and the face
# worker pool (FacePipeline).
target_sources(faceadapt_ingest PRIVATE
  src/gst_util.cpp
  src/frame_queue.cpp
  src/camera_source.cpp
  src/pipeline.cpp
  src/pipeline_face_stage.cpp
  src/frame_snapshot.cpp)
target_link_libraries(faceadapt_ingest PRIVATE PkgConfig::GST spdlog::spdlog)

# The RTSP test camera (RtspTestServer: `faceadapt rtsp-serve`, the tests, the benches): its own
# library, so that the production ingest library does not carry gst-rtsp-server.
add_library(faceadapt_rtsp_test_server src/rtsp_test_server.cpp)
target_include_directories(faceadapt_rtsp_test_server PRIVATE src)
target_link_libraries(faceadapt_rtsp_test_server PUBLIC faceadapt_ingest
  PRIVATE PkgConfig::GST PkgConfig::GSTRTSP spdlog::spdlog ${OpenCV_LIBS})
