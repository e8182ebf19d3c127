// face_stage_factory: the production FrameProcessor, one FaceStage per camera sharing one
// landmark model (loaded on the first camera, ~100 MB).
#include <memory>
#include <mutex>

#include "faceadapt/ingest/face_landmarks.hpp"
#include "faceadapt/ingest/face_pipeline.hpp"
#include "faceadapt/ingest/face_stage.hpp"

namespace faceadapt::ingest {

ProcessorFactory face_stage_factory(const config::DetectConfig& detect) {
    struct Shared {
        std::once_flag once;
        std::shared_ptr<const LandmarkModel> landmarks;
    };
    auto shared = std::make_shared<Shared>();
    return [detect, shared](const config::CameraConfig& camera) -> FrameProcessor {
        std::call_once(shared->once, [&] { shared->landmarks = std::make_shared<const LandmarkModel>(detect.landmarks_model); });
        auto stage = std::make_shared<FaceStage>(camera.id, detect, camera.min_face_px, shared->landmarks);
        return [stage](const Frame& frame) { return stage->process(frame.bgr, frame.timestamp); };
    };
}

}  // namespace faceadapt::ingest
