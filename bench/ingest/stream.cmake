# bench_cameras lands with the face stage (FaceStage) it measures.
