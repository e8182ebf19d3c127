// Model files: round trip, metadata without tensors, and rejection of damaged/unknown files.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "faceadapt/common/crc32.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "test_core_util.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace faceadapt::learner;
using faceadapt::test::error_of;
using faceadapt::test::slurp;
using faceadapt::test::spit;

namespace {

class ModelFileTest : public ::testing::Test {
protected:
    void SetUp() override {
        torch::manual_seed(7);
        net = FaceResNet(FaceResNetOptions{0.1, 16.0, 0});
        net->reset_classifier(torch::randn({5, 128}));
        net->eval();
        meta.version = 3;
        meta.parent_version = 2;
        meta.created = "2026-11-27T01:02:03Z";
        meta.provenance = {{"cycle", 3}, {"metrics", {{"tar_at_far_1e-3", 0.25}, {"note", "a \"quoted\" word"}}}};
        file = dir.path() / "model-3.fam";
        save_model(net, meta, file);
    }
    faceadapt::test::TempDir dir;
    FaceResNet net{nullptr};
    ModelMetadata meta;
    fs::path file;
};

}  // namespace

TEST_F(ModelFileTest, RoundTripGivesEqualOutputs) {
    auto loaded = load_model(file);
    EXPECT_FALSE(loaded.net->is_training());
    EXPECT_EQ(loaded.meta.version, 3);
    EXPECT_EQ(loaded.meta.parent_version, 2);
    EXPECT_EQ(loaded.meta.created, meta.created);
    EXPECT_EQ(loaded.meta.provenance, meta.provenance);
    EXPECT_EQ(loaded.meta.architecture, "dlib-resnet29");
    EXPECT_EQ(loaded.meta.num_classes, 5);
    EXPECT_DOUBLE_EQ(loaded.net->options().embedding_dropout, 0.1);
    EXPECT_DOUBLE_EQ(loaded.net->options().classifier_scale, 16.0);
    torch::NoGradGuard ng;
    const auto x = torch::randn({2, 3, 150, 150});
    const auto a = net->forward(x), b = loaded.net->forward(x);
    EXPECT_TRUE(torch::equal(a, b));
    EXPECT_TRUE(torch::equal(net->classify(a), loaded.net->classify(b)));
    // the write was atomic: nothing but the model is left in the folder
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
    EXPECT_EQ(entries, 1u);
}

TEST_F(ModelFileTest, MetadataReadsWithoutTensors) {
    const auto m = read_model_metadata(file);
    EXPECT_EQ(m.version, 3);
    EXPECT_EQ(m.input_size, 150);
    EXPECT_EQ(m.provenance, meta.provenance);
    // the weights are not touched: a file cut right after the metadata still gives it
    const std::string bytes = slurp(file);
    const fs::path cut = dir.path() / "cut.fam";
    spit(cut, bytes.substr(0, 16 + static_cast<unsigned char>(bytes[12]) + 256u * static_cast<unsigned char>(bytes[13])));
    EXPECT_EQ(read_model_metadata(cut).version, 3);
    EXPECT_NE(error_of([&] { load_model(cut); }).find("truncated"), std::string::npos);
}

TEST_F(ModelFileTest, CorruptFileIsRejected) {
    std::string bytes = slurp(file);
    bytes[bytes.size() / 2] ^= 0x5A;
    spit(file, bytes);
    const auto msg = error_of([&] { load_model(file); });
    EXPECT_NE(msg.find("checksum"), std::string::npos) << msg;
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
}

TEST_F(ModelFileTest, UnknownVersionOrArchitectureIsRejected) {
    std::string bytes = slurp(file);
    std::string v2 = bytes;
    v2[8] = 2;
    spit(file, v2);
    EXPECT_NE(error_of([&] { load_model(file); }).find("unknown format version 2"), std::string::npos);
    EXPECT_NE(error_of([&] { read_model_metadata(file); }).find("unknown format version 2"), std::string::npos);
    std::string arch = bytes;
    const auto at = arch.find("dlib-resnet29");
    ASSERT_NE(at, std::string::npos);
    arch.replace(at, 13, "dlib-resnet50");
    spit(file, arch);
    EXPECT_NE(error_of([&] { read_model_metadata(file); }).find("unknown architecture 'dlib-resnet50'"), std::string::npos);
    EXPECT_THROW(load_model(file), std::runtime_error);
    spit(file, "GARBAGE!" + bytes.substr(8));
    EXPECT_NE(error_of([&] { read_model_metadata(file); }).find("bad magic"), std::string::npos);
    EXPECT_NE(error_of([&] { load_model(dir.path() / "absent.fam"); }).find("absent.fam"), std::string::npos);
}

TEST_F(ModelFileTest, BadMetadataIsRefusedOnSave) {
    ModelMetadata bad = meta;
    bad.architecture = "resnet50";
    EXPECT_THROW(save_model(net, bad, dir.path() / "x.fam"), std::invalid_argument);
    EXPECT_FALSE(fs::exists(dir.path() / "x.fam"));
    EXPECT_THROW(save_model(net, meta, dir.path() / "no/such/dir/x.fam"), std::runtime_error);
}

// A file written before the metadata went through nlohmann: the same keys as hand-assembled text
// (the old writer's exact layout, provenance spliced in verbatim). It must still load.
TEST_F(ModelFileTest, FilesWithTheOldHandWrittenMetadataStillLoad) {
    const std::string bytes = slurp(file);
    auto le32 = [&](std::size_t at) {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= std::uint32_t(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
        return v;
    };
    auto put32 = [](std::string& out, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
    };
    const std::uint32_t m = le32(12);
    const std::string tail = bytes.substr(16 + m, bytes.size() - 4 - 16 - m);  // weights length + weights
    const std::string old_meta =
        "{\n"
        "  \"format\": \"faceadapt-model\",\n"
        "  \"format_version\": 1,\n"
        "  \"architecture\": \"dlib-resnet29\",\n"
        "  \"input\": {\"size\": 150, \"channels\": \"RGB\", \"mean\": [122.782, 117.001, 104.298], \"divisor\": 256},\n"
        "  \"embedding_dim\": 128,\n"
        "  \"version\": 3,\n"
        "  \"parent_version\": 2,\n"
        "  \"created\": \"2026-11-27T01:02:03Z\",\n"
        "  \"network\": {\"num_classes\": 5, \"embedding_dropout\": 0.10000000000000001, \"classifier_scale\": 16},\n"
        "  \"provenance\": {\"cycle\": 3, \"metrics\": {\"tar_at_far_1e-3\": 0.25, \"note\": \"a \\\"quoted\\\" word\"}}\n"
        "}\n";
    std::string old = bytes.substr(0, 12);
    put32(old, static_cast<std::uint32_t>(old_meta.size()));
    old += old_meta + tail;
    put32(old, faceadapt::common::crc32(old));
    const fs::path old_file = dir.path() / "old.fam";
    spit(old_file, old);
    auto loaded = load_model(old_file);
    EXPECT_EQ(loaded.meta.version, 3);
    EXPECT_EQ(loaded.meta.parent_version, 2);
    EXPECT_EQ(loaded.meta.num_classes, 5);
    EXPECT_DOUBLE_EQ(loaded.meta.embedding_dropout, 0.1);
    EXPECT_EQ(loaded.meta.provenance, meta.provenance);
    torch::NoGradGuard ng;
    const auto x = torch::randn({2, 3, 150, 150});
    EXPECT_TRUE(torch::equal(net->forward(x), loaded.net->forward(x)));
}

TEST_F(ModelFileTest, LoadsOntoCudaWhenAvailable) {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
    auto loaded = load_model(file, torch::Device(torch::kCUDA));
    EXPECT_TRUE(loaded.net->fc->weight.is_cuda());
    torch::NoGradGuard ng;
    const auto x = torch::randn({2, 3, 150, 150});
    EXPECT_LT((net->forward(x) - loaded.net->forward(x.cuda()).cpu()).abs().max().item<float>(), 1e-4);
}
