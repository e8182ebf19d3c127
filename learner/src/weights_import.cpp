#include "faceadapt/learner/weights_import.hpp"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

#include "mini_json.hpp"

namespace faceadapt::learner {

namespace fs = std::filesystem;

namespace {

constexpr const char* kManifestName = "face_recognition_model-weights_manifest.json";

std::string read_file(const fs::path& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(std::string(what) + " " + path.string() + ": cannot open (missing or unreadable)");
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw std::runtime_error(std::string(what) + " " + path.string() + ": read error");
    return ss.str();
}

// "conv64_1/conv1/conv/filters" -> "conv64_1.conv1.conv.weight"; "fc" -> "fc.weight".
std::string parameter_name(const std::string& manifest_name) {
    static const std::pair<const char*, const char*> suffixes[] = {
        {"/conv/filters", ".conv.weight"},
        {"/conv/bias", ".conv.bias"},
        {"/scale/weights", ".scale"},
        {"/scale/biases", ".shift"},
    };
    if (manifest_name == "fc") return "fc.weight";
    for (const auto& [from, to] : suffixes) {
        const std::size_t n = std::strlen(from);
        if (manifest_name.size() > n && manifest_name.compare(manifest_name.size() - n, n, from) == 0) {
            std::string head = manifest_name.substr(0, manifest_name.size() - n);
            for (char& c : head)
                if (c == '/') c = '.';
            return head + to;
        }
    }
    return {};
}

}  // namespace

fs::path default_weights_dir() {
    if (const char* env = std::getenv("FACEADAPT_WEIGHTS_DIR"); env && *env) return env;
    if (const char* home = std::getenv("HOME"); home && *home) {
        fs::path p = fs::path(home) / ".cache/faceadapt/face-api-1.7.15";
        if (fs::exists(p)) return p;
    }
    return "/usr/share/faceadapt/face-api-1.7.15";
}

FaceResNet import_face_api_weights(const fs::path& model_dir) {
    fs::path dir = model_dir;
    if (!fs::exists(dir / kManifestName) && fs::exists(dir / "model" / kManifestName)) dir = dir / "model";
    const fs::path manifest_path = dir / kManifestName;
    const std::string manifest_text = read_file(manifest_path, "weights manifest");

    json::Value manifest;
    try {
        manifest = json::parse(manifest_text);
    } catch (const std::exception& e) {
        throw std::runtime_error("weights manifest " + manifest_path.string() + ": " + e.what());
    }
    auto bad = [&](const std::string& what) {
        return std::runtime_error("weights manifest " + manifest_path.string() + ": " + what);
    };
    if (!manifest.is_array() || manifest.array.empty() || !manifest.array[0].is_object())
        throw bad("expected an array of weight groups");

    // Concatenate the shards of every group, in order; entries address the concatenation.
    std::string blob;
    std::vector<const json::Value*> entries;
    std::string bin_names;
    for (const auto& group : manifest.array) {
        const json::Value* paths = group.find("paths");
        const json::Value* weights = group.find("weights");
        if (!paths || !paths->is_array() || !weights || !weights->is_array())
            throw bad("a weight group lacks 'paths' or 'weights'");
        for (const auto& p : paths->array) {
            if (!p.is_string()) throw bad("'paths' holds a non-string");
            blob += read_file(dir / p.string, "weights file");
            bin_names += (bin_names.empty() ? "" : ", ") + (dir / p.string).string();
        }
        for (const auto& w : weights->array) entries.push_back(&w);
    }

    FaceResNet net;
    auto params = net->named_parameters(true);
    std::set<std::string> assigned;
    std::size_t offset = 0;
    torch::NoGradGuard no_grad;
    for (const json::Value* w : entries) {
        const json::Value* name = w->find("name");
        const json::Value* shape = w->find("shape");
        const json::Value* dtype = w->find("dtype");
        if (!name || !name->is_string() || !shape || !shape->is_array())
            throw bad("a weight entry lacks 'name' or 'shape'");
        if (dtype && (!dtype->is_string() || dtype->string != "float32"))
            throw bad("tensor '" + name->string + "': unsupported dtype");
        std::vector<int64_t> dims;
        int64_t numel = 1;
        for (const auto& d : shape->array) {
            if (!d.is_number() || d.number < 0) throw bad("tensor '" + name->string + "': bad shape");
            dims.push_back(static_cast<int64_t>(d.number));
            numel *= dims.back();
        }
        const std::string pname = parameter_name(name->string);
        if (pname.empty() || !params.contains(pname))
            throw bad("unknown tensor '" + name->string + "' (not a dlib-resnet29 parameter)");
        if (!assigned.insert(pname).second) throw bad("tensor '" + name->string + "' listed twice");

        const json::Value* quant = w->find("quantization");
        const std::size_t bytes = static_cast<std::size_t>(numel) * (quant ? 1 : 4);
        if (offset + bytes > blob.size())
            throw std::runtime_error("weights file " + bin_names + ": too short (" + std::to_string(blob.size()) +
                                     " bytes; tensor '" + name->string + "' needs bytes up to " +
                                     std::to_string(offset + bytes) + ")");
        torch::Tensor t = torch::empty(dims, torch::kFloat);
        float* dst = t.data_ptr<float>();
        const auto* src = reinterpret_cast<const unsigned char*>(blob.data() + offset);
        if (quant) {
            const json::Value* qd = quant->find("dtype");
            const json::Value* scale = quant->find("scale");
            const json::Value* min = quant->find("min");
            if (!qd || !qd->is_string() || qd->string != "uint8" || !scale || !scale->is_number() || !min ||
                !min->is_number())
                throw bad("tensor '" + name->string + "': unsupported quantization (need uint8 with scale, min)");
            for (int64_t i = 0; i < numel; ++i)
                dst[i] = static_cast<float>(static_cast<double>(src[i]) * scale->number + min->number);
        } else {
            std::memcpy(dst, src, bytes);  // little-endian float32, as on every supported host
        }
        offset += bytes;

        torch::Tensor& target = params[pname];
        if (t.dim() == 4) t = t.permute({3, 2, 0, 1});   // HWIO -> OIHW
        else if (pname == "fc.weight") t = t.t();         // [256,128] -> Linear weight [128,256]
        if (t.sizes() != target.sizes())
            throw bad("tensor '" + name->string + "': shape " + c10::str(t.sizes()) + " does not fit " + pname + " " +
                      c10::str(target.sizes()));
        target.copy_(t);
    }
    if (offset != blob.size())
        throw std::runtime_error("weights file " + bin_names + ": " + std::to_string(blob.size()) +
                                 " bytes, the manifest describes " + std::to_string(offset) + " (corrupt or wrong version)");
    for (const auto& p : params) {
        if (p.key() != "classifier" && !assigned.count(p.key()))
            throw bad("tensor for parameter '" + p.key() + "' is missing");
    }
    net->eval();
    return net;
}

FaceResNet load_source_model() { return import_face_api_weights(default_weights_dir()); }

}  // namespace faceadapt::learner
