# Face stage of ingest: HOG detection, landmarks, alignment, motion gating, tracking.
target_sources(faceadapt_ingest PRIVATE src/face_landmarks.cpp src/face_aligner.cpp src/face_batch.cpp src/image_file.cpp
  src/face_stage.cpp src/motion_regions.cpp src/region_hog.cpp src/tracker.cpp)
# RegionHog reproduces dlib's SIMD pyramid arithmetic bit for bit: no fused multiply-add there.
set_source_files_properties(src/region_hog.cpp PROPERTIES COMPILE_OPTIONS -ffp-contract=off)
