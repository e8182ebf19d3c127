// The ONNX export against the libtorch model: OpenCV DNN on the exported graph gives the same
// embeddings as learner::Embedder on ../shared/reference/embeddings (source and adapted model),
// the float16 variant's error, and the wire-format helpers.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "faceadapt/learner/embedder.hpp"
#include "faceadapt/learner/face_resnet.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "faceadapt/learner/onnx_export.hpp"
#include "faceadapt/learner/weights_import.hpp"
#include "faceadapt/onnx/dnn_embedder.hpp"
#include "faceadapt/onnx/face_graph.hpp"
#include "faceadapt/onnx/proto.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
namespace fo = faceadapt::onnx;
namespace fl = faceadapt::learner;

namespace {

fs::path reference_dir() { return faceadapt::test::shared_dir() / "reference/embeddings"; }
fs::path source_manifest() {
    return faceadapt::test::weights_dir() / "model/face_recognition_model-weights_manifest.json";
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
}

struct Reference {
    std::vector<cv::Mat> chips;                 // RGB
    std::vector<std::string> identities;
    std::vector<std::vector<double>> embeddings;  // the independent implementation's
};

Reference load_reference() {
    Reference r;
    const auto doc = nlohmann::json::parse(slurp(reference_dir() / "embeddings.json"));
    for (const auto& c : doc.at("chips")) {
        cv::Mat bgr = cv::imread((reference_dir() / c.at("chip").get<std::string>()).string(), cv::IMREAD_COLOR);
        if (bgr.empty()) throw std::runtime_error("unreadable reference chip " + c.at("chip").get<std::string>());
        cv::Mat rgb;
        cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
        r.chips.push_back(rgb);
        r.identities.push_back(c.at("identity").get<std::string>());
        r.embeddings.push_back(c.at("embedding").get<std::vector<double>>());
    }
    return r;
}

template <class A, class B>
double max_abs_diff(const std::vector<A>& a, const std::vector<B>& b) {
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        for (std::size_t k = 0; k < 128; ++k)
            worst = std::max(worst, std::abs(static_cast<double>(a[i][k]) - static_cast<double>(b[i][k])));
    return worst;
}

// A small adapted model: a few Adam steps of the cosine classifier's cross-entropy on the
// reference identities, from the source model (moves every conv, affine and the fc).
fl::FaceResNet adapt_briefly(const Reference& ref) {
    torch::manual_seed(7);
    fl::FaceResNet net = fl::load_source_model();
    std::vector<std::string> names = ref.identities;
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::vector<int64_t> labels;
    for (const auto& id : ref.identities)
        labels.push_back(std::find(names.begin(), names.end(), id) - names.begin());
    std::vector<std::uint8_t> raw;
    for (const auto& m : ref.chips) raw.insert(raw.end(), m.data, m.data + 150 * 150 * 3);
    auto chips = torch::from_blob(raw.data(), {static_cast<int64_t>(ref.chips.size()), 150, 150, 3}, torch::kUInt8).clone();
    auto x = fl::chips_to_input(chips);
    auto y = torch::tensor(labels);
    {
        torch::NoGradGuard ng;
        net->eval();
        auto e = net->forward(x);
        auto centroids = torch::zeros({static_cast<int64_t>(names.size()), 128});
        centroids.index_add_(0, y, e);
        net->reset_classifier(centroids);
    }
    net->train();
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-5));
    for (int step = 0; step < 3; ++step) {
        opt.zero_grad();
        auto loss = torch::nn::functional::cross_entropy(net->classify(net->forward(x)), y);
        loss.backward();
        opt.step();
    }
    net->eval();
    return net;
}

}  // namespace

TEST(OnnxExport, OpenCvDnnMatchesLibtorchOnReferenceChips) {
    FACEADAPT_REQUIRE_PATH(reference_dir() / "embeddings.json");
    FACEADAPT_REQUIRE_PATH(source_manifest());
    const Reference ref = load_reference();
    ASSERT_EQ(ref.chips.size(), 24u);
    faceadapt::test::TempDir tmp;

    // Source model.
    const auto onnx_file = tmp.path() / "source.onnx";
    spit(onnx_file, fl::export_model_file_onnx({}));
    const auto torch_source = fl::Embedder({}, "cpu", 8).embed(ref.chips);
    const auto dnn_source = fo::DnnEmbedder(onnx_file).embed(ref.chips, 5);  // a partial last batch
    const double source_err = max_abs_diff(dnn_source, torch_source);
    const double source_vs_reference = max_abs_diff(dnn_source, ref.embeddings);
    std::printf("[ figures  ] source model: OpenCV DNN vs libtorch max abs %.3g; vs reference embeddings.json %.3g\n",
                source_err, source_vs_reference);
    EXPECT_LT(source_err, 1e-4);
    EXPECT_LT(source_vs_reference, 1e-3) << "the reference is rounded to 6 decimals by an independent implementation";

    // Adapted model, through a model file as the daemon does.
    auto adapted = adapt_briefly(ref);
    fl::ModelMetadata meta;
    meta.version = 3;
    meta.parent_version = 0;
    const auto model_file = tmp.path() / "adapted.model";
    fl::save_model(adapted, meta, model_file);
    const auto adapted_onnx = tmp.path() / "adapted.onnx";
    spit(adapted_onnx, fl::export_model_file_onnx(model_file));
    const auto torch_adapted = fl::Embedder(model_file, "cpu", 8).embed(ref.chips);
    const auto dnn_adapted = fo::DnnEmbedder(adapted_onnx).embed(ref.chips);
    const double moved = max_abs_diff(torch_adapted, torch_source);
    const double adapted_err = max_abs_diff(dnn_adapted, torch_adapted);
    std::printf("[ figures  ] adapted model (3 Adam steps at lr 1e-5, moved embeddings by up to %.3g): OpenCV DNN vs libtorch "
                "max abs %.3g\n", moved, adapted_err);
    EXPECT_GT(moved, 1e-3) << "the adapted model must differ from the source for this test to mean anything";
    EXPECT_LT(adapted_err, 1e-4);
}

TEST(OnnxExport, Float16WeightsHalveTheFileWithinTheDoorsErrorBudget) {
    FACEADAPT_REQUIRE_PATH(reference_dir() / "embeddings.json");
    FACEADAPT_REQUIRE_PATH(source_manifest());
    const Reference ref = load_reference();
    faceadapt::test::TempDir tmp;
    fo::ExportOptions half;
    half.weights = fo::WeightType::kFloat16;
    const auto full_bytes = fl::export_model_file_onnx({});
    const auto half_bytes = fl::export_model_file_onnx({}, half);
    spit(tmp.path() / "half.onnx", half_bytes);
    const auto torch_e = fl::Embedder({}, "cpu", 8).embed(ref.chips);
    const auto dnn_half = fo::DnnEmbedder(tmp.path() / "half.onnx").embed(ref.chips);
    double worst_distance = 0;  // how far a probe's distance to the float32 embedding of itself moves
    for (std::size_t i = 0; i < ref.chips.size(); ++i) {
        double d2 = 0;
        for (std::size_t k = 0; k < 128; ++k) d2 += std::pow(double(dnn_half[i][k]) - torch_e[i][k], 2);
        worst_distance = std::max(worst_distance, std::sqrt(d2));
    }
    const double err = max_abs_diff(dnn_half, torch_e);
    std::printf("[ figures  ] float16 weights: %zu bytes vs %zu float32 (%.3f); embedding max abs error %.3g, "
                "Euclidean shift up to %.3g\n", half_bytes.size(), full_bytes.size(),
                double(half_bytes.size()) / double(full_bytes.size()), err, worst_distance);
    EXPECT_LT(half_bytes.size(), full_bytes.size() * 51 / 100);
    EXPECT_LT(err, 1e-3);
}

TEST(OnnxGraph, RefusesIncompleteWeightsNamingTheLayer) {
    fo::FaceResNetWeights w;
    w.fc.assign(128 * 256, 0.0f);
    try {
        fo::write_face_resnet_onnx(w);
        FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("conv32_down"), std::string::npos) << e.what();
    }
    EXPECT_EQ(fo::face_resnet_conv_layers().size(), 29u);
}

TEST(OnnxGraph, HalfConversionRoundsToNearestEven) {
    EXPECT_EQ(fo::float_to_half(1.0f), 0x3c00);
    EXPECT_EQ(fo::float_to_half(-2.0f), 0xc000);
    EXPECT_EQ(fo::float_to_half(65504.0f), 0x7bff);
    EXPECT_EQ(fo::float_to_half(1e6f), 0x7c00);                  // overflow -> inf
    EXPECT_EQ(fo::float_to_half(1.0f + 1.0f / 2048), 0x3c00);    // halfway, even stays
    EXPECT_EQ(fo::float_to_half(1.0f + 3.0f / 2048), 0x3c02);    // halfway, odd rounds up
    EXPECT_EQ(fo::float_to_half(5.9604645e-8f), 0x0001);         // smallest subnormal
    for (std::uint32_t h = 0; h < 0x7c00; ++h)  // every finite positive half survives the round trip
        ASSERT_EQ(fo::float_to_half(fo::half_to_float(static_cast<std::uint16_t>(h))), h) << h;
}

TEST(OnnxGraph, ExpandFloat16IsIdentityOnFloat32AndRejectsDamage) {
    // A float32 file comes back byte for byte; a truncated one is refused.
    FACEADAPT_REQUIRE_PATH(source_manifest());
    const auto full = fl::export_model_file_onnx({});
    EXPECT_EQ(fo::expand_float16_initializers(full), full);
    EXPECT_THROW(fo::expand_float16_initializers(std::string_view(full).substr(0, full.size() - 1000)),
                 fo::proto::ProtoError);
    fo::ExportOptions half;
    half.weights = fo::WeightType::kFloat16;
    const auto expanded = fo::expand_float16_initializers(fl::export_model_file_onnx({}, half));
    EXPECT_GT(expanded.size(), full.size()) << "FLOAT16 tensors became FLOAT (plus the Cast nodes)";
    EXPECT_THROW(fo::DnnEmbedder("/nonexistent/model.onnx"), std::runtime_error);
    faceadapt::test::TempDir tmp;
    spit(tmp.path() / "junk.onnx", "not an ONNX model at all");
    try {
        fo::DnnEmbedder junk(tmp.path() / "junk.onnx");
        FAIL() << "a junk file was loaded";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("junk.onnx"), std::string::npos) << e.what();
    }
}
