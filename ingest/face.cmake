# Face stage of ingest: HOG detection, landmarks, alignment, motion gating, tracking.
target_sources(faceadapt_ingest PRIVATE src/face_landmarks.cpp src/face_aligner.cpp src/face_batch.cpp
  src/face_stage.cpp src/motion_regions.cpp src/tracker.cpp)
