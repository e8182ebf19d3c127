#include "faceadapt/onnx/dnn_embedder.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>

#include <opencv2/dnn.hpp>

#include "faceadapt/onnx/face_graph.hpp"
#include "faceadapt/onnx/proto.hpp"

namespace faceadapt::onnx {

namespace {

constexpr std::uintmax_t kMaxModelBytes = 256u << 20;

std::string read_model(const std::filesystem::path& file) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    if (ec) throw std::runtime_error(file.string() + ": cannot read the ONNX model (" + ec.message() + ")");
    if (size > kMaxModelBytes) throw std::runtime_error(file.string() + ": ONNX model over 256 MiB");
    std::ifstream in(file, std::ios::binary);
    std::string bytes(static_cast<std::size_t>(size), '\0');
    if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
        throw std::runtime_error(file.string() + ": cannot read the ONNX model");
    return bytes;
}

}  // namespace

struct DnnEmbedder::Impl {
    std::string name;  // the file, for error messages
    mutable std::mutex mutex;
    mutable cv::dnn::Net net;
};

DnnEmbedder::DnnEmbedder(const std::filesystem::path& onnx_file) : impl_(std::make_unique<Impl>()) {
    impl_->name = onnx_file.string();
    std::string bytes;
    try {
        bytes = expand_float16_initializers(read_model(onnx_file));
        impl_->net = cv::dnn::readNetFromONNX(bytes.data(), bytes.size());
        if (impl_->net.empty()) throw std::runtime_error(onnx_file.string() + ": OpenCV DNN read an empty network");
        impl_->net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
        impl_->net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
        // One forward on a grey chip: checks the graph runs and gives [1,128], and makes OpenCV
        // allocate its buffers now rather than at the first face.
        embed({cv::Mat(kChipSide, kChipSide, CV_8UC3, cv::Scalar(128, 128, 128))});
    } catch (const cv::Exception& e) {
        throw std::runtime_error(onnx_file.string() + ": OpenCV DNN cannot import the ONNX model: " + e.msg);
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(onnx_file.string() + ": " + e.what());
    } catch (const proto::ProtoError& e) {
        throw std::runtime_error(onnx_file.string() + ": not an ONNX model: " + e.what());
    }
}

DnnEmbedder::~DnnEmbedder() = default;
DnnEmbedder::DnnEmbedder(DnnEmbedder&&) noexcept = default;
DnnEmbedder& DnnEmbedder::operator=(DnnEmbedder&&) noexcept = default;

std::vector<DnnEmbedding> DnnEmbedder::embed(const std::vector<cv::Mat>& chips, std::size_t batch) const {
    for (std::size_t i = 0; i < chips.size(); ++i)
        if (chips[i].rows != kChipSide || chips[i].cols != kChipSide || chips[i].type() != CV_8UC3)
            throw std::invalid_argument("DnnEmbedder::embed: chip " + std::to_string(i) +
                                        " is not a 150x150 CV_8UC3 RGB image");
    batch = std::max<std::size_t>(batch, 1);
    std::vector<DnnEmbedding> out(chips.size());
    std::lock_guard lock(impl_->mutex);
    for (std::size_t start = 0; start < chips.size(); start += batch) {
        const std::size_t n = std::min(batch, chips.size() - start);
        const std::vector<cv::Mat> part(chips.begin() + static_cast<std::ptrdiff_t>(start),
                                        chips.begin() + static_cast<std::ptrdiff_t>(start + n));
        // NCHW float, values 0..255, channel order as given (RGB): the graph normalises.
        const cv::Mat blob = cv::dnn::blobFromImages(part, 1.0, cv::Size(), cv::Scalar(), false, false, CV_32F);
        impl_->net.setInput(blob, kInputName);
        cv::Mat e = impl_->net.forward(kOutputName);
        if (e.dims != 2 || e.size[0] != static_cast<int>(n) || e.size[1] != kEmbeddingDim || e.type() != CV_32F)
            throw std::runtime_error(impl_->name + ": the model's output \"embedding\" is not [N,128] float");
        if (!e.isContinuous()) e = e.clone();
        for (std::size_t i = 0; i < n; ++i)
            std::memcpy(out[start + i].data(), e.ptr<float>(static_cast<int>(i)), sizeof(float) * kEmbeddingDim);
    }
    return out;
}

}  // namespace faceadapt::onnx
