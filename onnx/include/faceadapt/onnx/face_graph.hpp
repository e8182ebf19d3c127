// The FaceResNet (dlib ResNet-29) ONNX graph, written from plain float weights (torch-free).
//
// WHAT THIS REPRESENTS
//   write_face_resnet_onnx() turns the folded weights of a FaceResNet into an ONNX model
//   (IR version 6, default-domain opset 11: the opset Debian 12's OpenCV 4.6 DNN importer and
//   ONNX Runtime both read). The graph, exactly (docs/door-integration.md repeats it):
//     input    "input"     float [N,3,150,150], RGB, raw pixel values 0..255 (NOT normalised)
//     x = (input - [122.782,117.001,104.298]) * (1/256)            Sub (mean [3,1,1]), Mul
//     stem     Conv 7x7/2 'valid' + Relu, MaxPool 3x3/2 'valid'
//     residual Relu(Conv3x3(Relu(Conv3x3(x))) + x)
//     down     a = Conv3x3(Relu(Conv3x3/2 'valid'(x))) [Pad 1 row bottom + 1 column right when the
//              skip is one larger]; s = AveragePool 2x2/2(x) [Pad zero channels when the width
//              doubles]; Relu(a + s)
//     head     GlobalAveragePool, Flatten, Gemm(transB) with fc [128,256] (no bias)
//     output   "embedding" float [N,128], raw (NOT L2-normalised); same person when the
//              Euclidean distance is at or below the package's threshold (0.6 for the source).
//   Each conv carries its dlib affine folded in: W' = W * scale[o], b' = b * scale[o] + shift[o]
//   (computed in double, rounded once). Pads are constant initializers and every shape is known
//   at export time: OpenCV 4.6 accepts only pads known at load time and refuses a Concat with a
//   computed zero tensor, so the zero channels are a constant Pad on the channel axis.
//   With WeightType::kFloat16 every conv weight/bias and the fc are FLOAT16 initializers each
//   followed by Cast(to=FLOAT): valid ONNX that ONNX Runtime runs as is; OpenCV 4.6 cannot read
//   FLOAT16 tensors, so a door on OpenCV expands them first (expand_float16_initializers()).
// THREAD SAFETY
//   Free functions over values.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace faceadapt::onnx {

inline constexpr const char* kInputName = "input";
inline constexpr const char* kOutputName = "embedding";
inline constexpr int kChipSide = 150;
inline constexpr int kEmbeddingDim = 128;
inline constexpr std::int64_t kOpset = 11;
inline constexpr std::int64_t kIrVersion = 6;
// (rgb - mean) / 256, the normalisation of learner::chips_to_input (done inside the graph).
inline constexpr float kMeanRgb[3] = {122.782f, 117.001f, 104.298f};
inline constexpr float kInputScale = 1.0f / 256.0f;

enum class WeightType { kFloat32, kFloat16 };

// One conv layer with its affine folded in: weight [out, in, k, k] row-major, bias [out].
struct ConvWeights {
    std::int64_t out = 0, in = 0, kernel = 0;
    std::vector<float> weight, bias;
};

// Keyed by the FaceResNet module path of the ConvAffine: "conv32_down", "conv32_1.conv1",
// "conv64_down.conv2", ... (29 layers); fc is the Linear weight [128, 256] row-major.
struct FaceResNetWeights {
    std::map<std::string, ConvWeights> convs;
    std::vector<float> fc;
};

struct ExportOptions {
    WeightType weights = WeightType::kFloat32;
    std::int64_t model_version = 0;                 // ModelProto.model_version
    std::string producer_version;                   // e.g. the faceadapt version
    std::map<std::string, std::string> metadata;    // extra metadata_props (key -> value)
};

// requires: every layer of the architecture above is in `w.convs` with the right shape and
//           w.fc has 128*256 values; all values finite.
// ensures:  returns the serialised ModelProto (an .onnx file's bytes).
// throws:   std::invalid_argument naming the missing or misshapen layer, or a non-finite value.
std::string write_face_resnet_onnx(const FaceResNetWeights& w, const ExportOptions& options = {});

// The names of the 29 conv layers in graph order (for exporters and tests).
std::vector<std::string> face_resnet_conv_layers();

// IEEE binary16 conversions (round to nearest even; overflow -> infinity).
std::uint16_t float_to_half(float f);
float half_to_float(std::uint16_t h);

// requires: `model` is a serialised ONNX ModelProto.
// ensures:  the same model with every FLOAT16 initializer (raw_data) rewritten as a FLOAT one of
//           the same name and dims; everything else is copied byte for byte. A model without
//           FLOAT16 initializers comes back unchanged.
// throws:   proto::ProtoError for a malformed message, std::invalid_argument for a FLOAT16
//           initializer not stored in raw_data or whose size does not match its dims.
std::string expand_float16_initializers(std::string_view model);

}  // namespace faceadapt::onnx
