# Camera streams: CameraSource (GStreamer pipelines with reconnects), frame queues, the face
# worker pool (FacePipeline) and the RTSP test camera (RtspTestServer, `faceadapt rtsp-serve`).
target_sources(faceadapt_ingest PRIVATE
  src/gst_util.cpp
  src/frame_queue.cpp
  src/camera_source.cpp
  src/rtsp_test_server.cpp
  src/pipeline.cpp
  src/pipeline_face_stage.cpp)
target_link_libraries(faceadapt_ingest PRIVATE PkgConfig::GST PkgConfig::GSTRTSP spdlog::spdlog)
