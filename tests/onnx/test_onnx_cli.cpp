// `faceadapt export --format onnx`: the files it writes pass Debian's ONNX checker
// (/usr/bin/python3 -c "import onnx; onnx.checker.check_model(...)", full_check with shape
// inference), float32 and float16; bad input exits 2 and writes nothing.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace fs = std::filesystem;
using faceadapt::test::faceadapt_bin;
using faceadapt::test::run_command;

namespace {

bool have_python_onnx() { return run_command("/usr/bin/python3 -c 'import onnx' 2>/dev/null") == 0; }

// The checker, then the graph's declared input/output as "name:dims" lines.
int check_model(const fs::path& file, std::string* out) {
    const std::string py =
        "import sys, onnx\n"
        "m = onnx.load(sys.argv[1])\n"
        "onnx.checker.check_model(m, full_check=True)\n"
        "def dims(v): return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]\n"
        "print('opset', m.opset_import[0].version, 'ir', m.ir_version)\n"
        "for v in m.graph.input: print('input', v.name, dims(v))\n"
        "for v in m.graph.output: print('output', v.name, dims(v))\n"
        "inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)\n"
        "print('inferred', [dims(v) for v in inferred.graph.output])\n";
    return run_command("/usr/bin/python3 -c \"" + py + "\" " + file.string() + " 2>&1", out);
}

}  // namespace

TEST(ExportCli, OnnxFilesPassTheOnnxChecker) {
    FACEADAPT_REQUIRE_PATH(faceadapt::test::weights_dir() / "model/face_recognition_model.bin");
    if (!have_python_onnx()) GTEST_SKIP() << "needs Debian's python3-onnx (scripts/install-deps installs it)";
    faceadapt::test::TempDir tmp;
    for (const std::string weights : {"float32", "float16"}) {
        const auto file = tmp.path() / (weights + ".onnx");
        std::string out;
        ASSERT_EQ(run_command(faceadapt_bin() + " export --format onnx --weights " + weights + " --out " + file.string() +
                                  " 2>&1", &out), 0) << out;
        EXPECT_NE(out.find("wrote"), std::string::npos) << out;
        ASSERT_TRUE(fs::exists(file));
        std::string checked;
        ASSERT_EQ(check_model(file, &checked), 0) << weights << ":\n" << checked;
        EXPECT_NE(checked.find("opset 11 ir 6"), std::string::npos) << checked;
        EXPECT_NE(checked.find("input input ['N', 3, 150, 150]"), std::string::npos) << checked;
        EXPECT_NE(checked.find("output embedding ['N', 128]"), std::string::npos) << checked;
        EXPECT_NE(checked.find("inferred [['N', 128]]"), std::string::npos) << checked;
    }
    EXPECT_LT(fs::file_size(tmp.path() / "float16.onnx"), fs::file_size(tmp.path() / "float32.onnx") * 51 / 100);
}

TEST(ExportCli, BadInputExitsTwoAndWritesNothing) {
    faceadapt::test::TempDir tmp;
    std::string out;
    EXPECT_EQ(run_command(faceadapt_bin() + " export --format onnx --out " + (tmp.path() / "no/such/dir/m.onnx").string() +
                              " 2>&1", &out), 2) << out;
    EXPECT_NE(out.find("does not exist"), std::string::npos) << out;
    EXPECT_EQ(run_command(faceadapt_bin() + " export --format tflite --out " + (tmp.path() / "m.onnx").string() + " 2>&1",
                          &out), 2) << out;
    EXPECT_EQ(run_command(faceadapt_bin() + " export --model " + (tmp.path() / "absent.model").string() + " --out " +
                              (tmp.path() / "m.onnx").string() + " 2>&1", &out), 2) << out;
    EXPECT_TRUE(fs::is_empty(tmp.path()));
}
