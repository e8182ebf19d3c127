// DoorEmbedder on OpenCV DNN (faceadapt-door); see door_embedder.hpp.
#include "door_embedder.hpp"

#include <algorithm>
#include <vector>

#include <opencv2/core/utility.hpp>

#include "faceadapt/onnx/dnn_embedder.hpp"
#include "faceadapt/publish/package.hpp"

namespace faceadapt::tools {

struct DoorEmbedder::Impl {
    onnx::DnnEmbedder embedder;
};

std::string_view DoorEmbedder::model_format() { return publish::kModelFormatOnnx; }

DoorEmbedder::DoorEmbedder(const std::filesystem::path& model_file, int threads) {
    cv::setNumThreads(threads);
    impl_ = std::make_unique<Impl>(Impl{onnx::DnnEmbedder(model_file)});
}

DoorEmbedder::~DoorEmbedder() = default;

publish::Embedding DoorEmbedder::embed(const cv::Mat& rgb_chip) const {
    const auto e = impl_->embedder.embed(std::vector<cv::Mat>{rgb_chip}).at(0);
    publish::Embedding out;
    std::copy(e.begin(), e.end(), out.begin());
    return out;
}

}  // namespace faceadapt::tools
