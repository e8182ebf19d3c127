// face_stage_factory: the production FrameProcessor, one FaceStage per camera sharing one
// landmark model (~100 MB).
#include <memory>
#include <mutex>
#include <stdexcept>

#include "faceadapt/ingest/face_landmarks.hpp"
#include "faceadapt/ingest/face_pipeline.hpp"
#include "faceadapt/ingest/face_stage.hpp"

namespace faceadapt::ingest {
namespace {

struct SharedLandmarks {
    std::once_flag once;
    std::shared_ptr<const LandmarkModel> model;
};

ProcessorFactory make_factory(const config::DetectConfig& detect, std::shared_ptr<SharedLandmarks> shared) {
    return [detect, shared](const config::CameraConfig& camera) -> FrameProcessor {
        std::call_once(shared->once, [&] {
            if (!shared->model) shared->model = std::make_shared<const LandmarkModel>(detect.landmarks_model);
        });
        auto stage = std::make_shared<FaceStage>(camera.id, detect, camera.min_face_px, shared->model);
        // A frame of a new connection (the camera restarted, or the network came back) ends the
        // tracks of the old one: a track never spans two streams.
        auto stream = std::make_shared<std::uint64_t>(0);
        return [stage, stream](const Frame& frame) {
            if (frame.stream != *stream) {
                if (*stream != 0) stage->new_stream();
                *stream = frame.stream;
            }
            return stage->process(frame.bgr, frame.timestamp);
        };
    };
}

}  // namespace

ProcessorFactory face_stage_factory(const config::DetectConfig& detect) {
    return make_factory(detect, std::make_shared<SharedLandmarks>());
}

ProcessorFactory face_stage_factory(const config::DetectConfig& detect, std::shared_ptr<const LandmarkModel> landmarks) {
    if (!landmarks) throw std::invalid_argument("face_stage_factory: no landmark model given");
    auto shared = std::make_shared<SharedLandmarks>();
    shared->model = std::move(landmarks);
    return make_factory(detect, std::move(shared));
}

}  // namespace faceadapt::ingest
