# Face stage of ingest: HOG detection, landmarks, alignment, motion gating, tracking.
# The still-image aligner (landmarks + FaceAligner) is its own small library, OpenCV + dlib only,
# so that the torch-free door (tools/faceadapt-door) links it without GStreamer.
add_library(faceadapt_ingest_still STATIC src/face_landmarks.cpp src/face_aligner.cpp)
target_include_directories(faceadapt_ingest_still PUBLIC include)
target_link_libraries(faceadapt_ingest_still PUBLIC opencv_core PRIVATE opencv_imgproc dlib::dlib)
target_link_libraries(faceadapt_ingest PUBLIC faceadapt_ingest_still)
target_sources(faceadapt_ingest PRIVATE src/face_batch.cpp src/image_file.cpp
  src/face_stage.cpp src/motion_regions.cpp src/region_hog.cpp src/tracker.cpp)
# RegionHog reproduces dlib's SIMD pyramid arithmetic bit for bit: no fused multiply-add there.
set_source_files_properties(src/region_hog.cpp PROPERTIES COMPILE_OPTIONS -ffp-contract=off)
