// FaceResNet, weight import and the Embedder against the reference embeddings.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "faceadapt/learner/embedder.hpp"
#include "faceadapt/learner/face_resnet.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "faceadapt/learner/weights_import.hpp"
#include "test_core_util.hpp"
#include "test_support.hpp"

#ifdef FACEADAPT_HAVE_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace fs = std::filesystem;
using namespace faceadapt::learner;
using faceadapt::test::error_of;
using faceadapt::test::slurp;
using faceadapt::test::spit;

namespace {

fs::path model_dir() { return faceadapt::test::weights_dir() / "model"; }
constexpr const char* kManifest = "face_recognition_model-weights_manifest.json";
constexpr const char* kBin = "face_recognition_model.bin";

// Copies the real weights into a temp folder so that one file can be damaged.
void copy_weights(const fs::path& to) {
    fs::copy_file(model_dir() / kManifest, to / kManifest);
    fs::copy_file(model_dir() / kBin, to / kBin);
}

}  // namespace

TEST(FaceResNet, ShapesParametersAndNoBuffers) {
    FaceResNet net;
    net->eval();
    torch::NoGradGuard ng;
    const auto out = net->forward(torch::randn({2, 3, 150, 150}));
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 128}));
    EXPECT_TRUE(net->named_buffers(true).is_empty()) << "no BatchNorm: no buffers";
    // 29 conv layers x (filters, bias, scale, shift) + fc + classifier
    EXPECT_EQ(net->backbone_parameters().size(), 29u * 4 + 1);
    EXPECT_EQ(net->classifier_parameters().size(), 1u);
    EXPECT_THROW(net->forward(torch::randn({2, 150, 150, 3})), std::invalid_argument);
}

TEST(FaceResNet, CosineClassifierFromCentroids) {
    FaceResNet net(FaceResNetOptions{0.0, 10.0, 0});
    EXPECT_THROW(net->classify(torch::randn({1, 128})), std::logic_error);
    auto centroids = torch::zeros({3, 128});
    centroids[0][0] = 5.0;
    centroids[1][1] = 0.5;
    centroids[2][2] = 2.0;
    auto param = net->classifier;
    net->reset_classifier(centroids);
    EXPECT_EQ(net->options().num_classes, 3);
    EXPECT_TRUE(net->classifier.is_same(param)) << "same parameter object (set_data)";
    EXPECT_NEAR(net->classifier.norm(2, 1).sub(1).abs().max().item<float>(), 0.0f, 1e-6);
    auto e = torch::zeros({1, 128});
    e[0][1] = 3.0;
    const auto logits = net->classify(e);
    EXPECT_NEAR(logits[0][0].item<float>(), 0.0f, 1e-5);
    EXPECT_NEAR(logits[0][1].item<float>(), 10.0f, 1e-5);
    EXPECT_NEAR(logits[0][2].item<float>(), 0.0f, 1e-5);
    EXPECT_THROW(net->reset_classifier(torch::zeros({2, 64})), std::invalid_argument);
}

TEST(FaceResNet, ChipsToInputNormalises) {
    auto chips = torch::full({1, 150, 150, 3}, 128, torch::kUInt8);
    chips.index_put_({0, 0, 0, 2}, 255);
    const auto x = chips_to_input(chips);
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{1, 3, 150, 150}));
    EXPECT_NEAR(x[0][0][0][0].item<float>(), (128 - 122.782f) / 256, 1e-6);
    EXPECT_NEAR(x[0][1][5][5].item<float>(), (128 - 117.001f) / 256, 1e-6);
    EXPECT_NEAR(x[0][2][0][0].item<float>(), (255 - 104.298f) / 256, 1e-6);
    EXPECT_THROW(chips_to_input(torch::zeros({1, 150, 150, 3})), std::invalid_argument);
}

TEST(FaceResNet, CloneIsIndependent) {
    FaceResNet a;
    auto b = clone_face_resnet(a);
    {
        torch::NoGradGuard ng;
        a->fc->weight.add_(1.0);
    }
    EXPECT_FALSE(torch::equal(a->fc->weight, b->fc->weight));
    EXPECT_TRUE(torch::equal(a->conv32_down->conv->weight, b->conv32_down->conv->weight));
}

TEST(WeightsImport, LoadsTheSourceModel) {
    FACEADAPT_REQUIRE_PATH(model_dir() / kManifest);
    auto net = import_face_api_weights(model_dir());
    // First fc entry and the raw float32 conv64 filters arrive in the right place and layout.
    EXPECT_FALSE(net->is_training());
    EXPECT_EQ(net->conv64_down->conv1->conv->weight.sizes(), (std::vector<int64_t>{64, 32, 3, 3}));
    EXPECT_GT(net->conv32_down->scale.min().item<float>(), 5.0f);  // manifest: min 5.79
    // parent folder (with model/) works too
    auto again = import_face_api_weights(faceadapt::test::weights_dir());
    EXPECT_TRUE(torch::equal(net->fc->weight, again->fc->weight));
}

TEST(WeightsImport, MissingFilesAreNamed) {
    faceadapt::test::TempDir dir;
    EXPECT_NE(error_of([&] { import_face_api_weights(dir.path()); }).find(kManifest), std::string::npos);
    FACEADAPT_REQUIRE_PATH(model_dir() / kManifest);
    fs::copy_file(model_dir() / kManifest, dir.path() / kManifest);
    const auto msg = error_of([&] { import_face_api_weights(dir.path()); });
    EXPECT_NE(msg.find(kBin), std::string::npos) << msg;
}

TEST(WeightsImport, TruncatedOrLongBinIsRejected) {
    FACEADAPT_REQUIRE_PATH(model_dir() / kManifest);
    faceadapt::test::TempDir dir;
    copy_weights(dir.path());
    const std::string bin = slurp(dir.path() / kBin);
    spit(dir.path() / kBin, bin.substr(0, bin.size() - 1000));
    auto msg = error_of([&] { import_face_api_weights(dir.path()); });
    EXPECT_NE(msg.find("too short"), std::string::npos) << msg;
    EXPECT_NE(msg.find(kBin), std::string::npos) << msg;
    spit(dir.path() / kBin, bin + "xxxx");
    msg = error_of([&] { import_face_api_weights(dir.path()); });
    EXPECT_NE(msg.find("the manifest describes"), std::string::npos) << msg;
}

TEST(WeightsImport, WrongManifestIsRejected) {
    FACEADAPT_REQUIRE_PATH(model_dir() / kManifest);
    faceadapt::test::TempDir dir;
    copy_weights(dir.path());
    const std::string manifest = slurp(dir.path() / kManifest);
    // not JSON
    spit(dir.path() / kManifest, manifest.substr(0, manifest.size() / 2));
    auto msg = error_of([&] { import_face_api_weights(dir.path()); });
    EXPECT_NE(msg.find("JSON error"), std::string::npos) << msg;
    EXPECT_NE(msg.find(kManifest), std::string::npos) << msg;
    // a shape that does not fit the network
    std::string wrong = manifest;
    const std::string from = "\"shape\": [7, 7, 3, 32]";
    auto at = wrong.find(from);
    if (at == std::string::npos) {
        const std::string compact = "\"shape\":[7,7,3,32]";
        at = wrong.find(compact);
        ASSERT_NE(at, std::string::npos);
        wrong.replace(at, compact.size(), "\"shape\":[7,7,32,3]");
    } else {
        wrong.replace(at, from.size(), "\"shape\": [7, 7, 32, 3]");
    }
    spit(dir.path() / kManifest, wrong);
    msg = error_of([&] { import_face_api_weights(dir.path()); });
    EXPECT_NE(msg.find("does not fit"), std::string::npos) << msg;
    // an unknown tensor name
    wrong = manifest;
    at = wrong.find("conv32_down/conv/filters");
    ASSERT_NE(at, std::string::npos);
    wrong.replace(at, 8, "convXX_x");
    spit(dir.path() / kManifest, wrong);
    msg = error_of([&] { import_face_api_weights(dir.path()); });
    EXPECT_NE(msg.find("unknown tensor"), std::string::npos) << msg;
}

TEST(Embedder, ModelFileGivesTheSourceModelsEmbeddings) {
    FACEADAPT_REQUIRE_PATH(model_dir() / kManifest);
    faceadapt::test::TempDir dir;
    auto net = load_source_model();
    ModelMetadata meta;
    meta.provenance = {{"imported", true}};
    save_model(net, meta, dir.path() / "source.fam");
    const Embedder from_source({}, "cpu", 4), from_file(dir.path() / "source.fam", "cpu", 2);
    EXPECT_EQ(from_file.metadata().provenance, nlohmann::json({{"imported", true}}));
    std::vector<std::uint8_t> raw(3 * 150 * 150 * 3);
    for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13);
    const auto a = from_source.embed(raw.data(), 3), b = from_file.embed(raw.data(), 3);
    ASSERT_EQ(b.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t k = 0; k < 128; ++k) EXPECT_NEAR(a[i][k], b[i][k], 1e-5);
    EXPECT_TRUE(from_source.embed(raw.data(), 0).empty());
}

#ifdef FACEADAPT_HAVE_OPENCV
TEST(Embedder, MatchesReferenceEmbeddings) {
    const fs::path ref = faceadapt::test::shared_dir() / "reference/embeddings";
    FACEADAPT_REQUIRE_PATH(ref / "embeddings.json");
    FACEADAPT_REQUIRE_PATH(model_dir() / kManifest);
    const auto doc = nlohmann::json::parse(slurp(ref / "embeddings.json"));
    ASSERT_TRUE(doc.contains("chips") && doc["chips"].is_array());
    std::vector<cv::Mat> images;
    std::vector<std::vector<double>> expected;
    for (const auto& c : doc["chips"]) {
        const std::string chip = c.at("chip").get<std::string>();
        cv::Mat bgr = cv::imread((ref / chip).string(), cv::IMREAD_COLOR);
        ASSERT_FALSE(bgr.empty()) << chip;
        cv::Mat rgb;
        cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
        images.push_back(rgb);
        std::vector<double> e;
        for (const auto& v : c.at("embedding")) e.push_back(v.get<double>());
        ASSERT_EQ(e.size(), 128u);
        expected.push_back(e);
    }
    ASSERT_EQ(images.size(), 24u);
    Embedder embedder({}, "cpu", 10);  // batch 10: exercises a partial last batch
    EXPECT_EQ(embedder.metadata().version, 0);
    const auto got = embedder.embed(images);
    ASSERT_EQ(got.size(), images.size());
    double worst = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i)
        for (std::size_t k = 0; k < 128; ++k) worst = std::max(worst, std::abs(got[i][k] - expected[i][k]));
    EXPECT_LT(worst, 1e-3) << "max abs difference to embeddings.json";
    // the raw-buffer overload gives the same numbers
    std::vector<std::uint8_t> raw;
    for (const auto& m : images) raw.insert(raw.end(), m.data, m.data + 150 * 150 * 3);
    const auto got2 = embedder.embed(raw.data(), images.size());
    for (std::size_t i = 0; i < got.size(); ++i)
        for (std::size_t k = 0; k < 128; ++k) ASSERT_NEAR(got[i][k], got2[i][k], 1e-5);
}

TEST(Embedder, RejectsBadInput) {
    FACEADAPT_REQUIRE_PATH(model_dir() / kManifest);
    EXPECT_THROW(Embedder({}, "cpu", 0), std::invalid_argument);
    EXPECT_THROW(Embedder({}, "tpu", 8), std::invalid_argument);
    EXPECT_THROW(Embedder("/nonexistent/model.fam", "cpu", 8), std::runtime_error);
    Embedder e({}, "cpu", 8);
    const auto msg = error_of([&] { e.embed(std::vector<cv::Mat>{cv::Mat(150, 150, CV_8UC3), cv::Mat(100, 100, CV_8UC3)}); });
    EXPECT_NE(msg.find("chip 1"), std::string::npos) << msg;
    EXPECT_TRUE(e.embed(std::vector<cv::Mat>{}).empty());
}
#endif
