// faceadapt export --format onnx --out FILE [--model M] [--weights float32|float16]
//   Writes the model (default: the pretrained source model) as an ONNX graph for runtimes
//   without libtorch (OpenCV DNN, ONNX Runtime, NPU converters); see docs/door-integration.md.
// faceadapt export --format model --out FILE
//   Writes the pretrained source model as a faceadapt model file (docs/model-format.md):
//   faceadaptd, which loads no torch, has it written so that it can register version 0's
//   model (a gallery update while the source model is current, daemon/gallery_update.hpp).
//   Exit 0 ok, 1 runtime failure (model cannot be loaded), 2 bad input.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "faceadapt/learner/onnx_export.hpp"
#include "faceadapt/learner/weights_import.hpp"

namespace faceadapt::tools {

namespace fs = std::filesystem;

void register_export_command(CLI::App& app, CommandResult& result) {
    struct ExportArgs {
        fs::path model, out;
        std::string format = "onnx", weights = "float32";
        std::int64_t model_version = 0;
    };
    auto a = std::make_shared<ExportArgs>();
    auto* cmd = app.add_subcommand("export", "Write a model as an ONNX graph (for doors without libtorch)");
    cmd->add_option("--model", a->model, "faceadapt model file (default: the pretrained source model)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--format", a->format, "output format")->check(CLI::IsMember({"onnx", "model"}));
    cmd->add_option("--weights", a->weights, "weight precision: float32 (any runtime) or float16 (half the size; "
                                             "OpenCV 4.6 needs the FLOAT16 tensors expanded first)")
        ->check(CLI::IsMember({"float32", "float16"}));
    cmd->add_option("--out", a->out, "ONNX file to write")->required();
    cmd->add_option("--model-version", a->model_version,
                    "the ONNX model_version to record (default: the model file's version; faceadaptd passes the "
                    "registry version it packages)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 40));
    cmd->callback([a, &result] {
        run_guarded(result, [&] {
            if (!a->out.parent_path().empty() && !fs::is_directory(a->out.parent_path()))
                throw std::invalid_argument("export: the folder of --out does not exist: " + a->out.parent_path().string());
            if (a->format == "model") {
                if (!a->model.empty()) throw std::invalid_argument("export --format model: writes the source model; no --model");
                learner::FaceResNet source = learner::load_source_model();
                learner::ModelMetadata meta;
                meta.provenance = {{"source", "pretrained source (faceadapt export --format model)"}};
                learner::save_model(source, meta, a->out);
                std::cout << "wrote " << a->out.string() << ": the pretrained source model\n";
                return 0;
            }
            onnx::ExportOptions options;
            options.weights = a->weights == "float16" ? onnx::WeightType::kFloat16 : onnx::WeightType::kFloat32;
            options.producer_version = FACEADAPT_VERSION;
            options.model_version = a->model_version;
            const auto bytes = learner::export_model_file_onnx(a->model, options);
            common::write_file_atomic(a->out, bytes);
            std::cout << "wrote " << a->out.string() << ": " << bytes.size() << " bytes, ONNX opset " << onnx::kOpset
                      << ", " << a->weights << " weights, input \"" << onnx::kInputName << "\" [N,3,150,150] RGB 0..255, "
                      << "output \"" << onnx::kOutputName << "\" [N,128]\n";
            return 0;
        });
    });
}

}  // namespace faceadapt::tools
