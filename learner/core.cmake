# Learner I: network, weight import, model files, embedding, evaluation (issue 3).
target_sources(faceadapt_learner PRIVATE
  src/face_resnet.cpp
  src/weights_import.cpp
  src/model_file.cpp
  src/torch_archive_check.cpp
  src/embedder.cpp
  src/eval.cpp
  src/eval_cluster.cpp
  src/onnx_export.cpp)
target_link_libraries(faceadapt_learner PUBLIC faceadapt_onnx)
