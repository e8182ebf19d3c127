#include "faceadapt/learner/weights_import.hpp"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "faceadapt/common/durable_file.hpp"

namespace faceadapt::learner {

namespace fs = std::filesystem;

namespace {

constexpr const char* kManifestName = "face_recognition_model-weights_manifest.json";

// common::read_file, its error prefixed with what the file is ("weights manifest ...").
std::string read_file(const fs::path& path, const char* what) {
    try {
        return common::read_file(path);
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string(what) + " " + e.what());
    }
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

    nlohmann::json manifest;
    try {
        manifest = nlohmann::json::parse(manifest_text);
    } catch (const nlohmann::json::parse_error& e) {  // its what() quotes the text: not repeated
        throw std::runtime_error("weights manifest " + manifest_path.string() + ": JSON error at byte " +
                                 std::to_string(e.byte));
    } catch (const nlohmann::json::exception&) {  // out_of_range: a number like 1e999
        throw std::runtime_error("weights manifest " + manifest_path.string() + ": a JSON number out of range");
    }
    auto bad = [&](const std::string& what) {
        return std::runtime_error("weights manifest " + manifest_path.string() + ": " + what);
    };
    if (!manifest.is_array() || manifest.empty() || !manifest[0].is_object())
        throw bad("expected an array of weight groups");
    // A member of an object, or nullptr when absent (or `v` is not an object).
    auto find = [](const nlohmann::json& v, const char* key) -> const nlohmann::json* {
        if (!v.is_object()) return nullptr;
        const auto it = v.find(key);
        return it == v.end() ? nullptr : &*it;
    };

    // Concatenate the shards of every group, in order; entries address the concatenation.
    std::string blob;
    std::vector<const nlohmann::json*> entries;
    std::string bin_names;
    for (const auto& group : manifest) {
        const nlohmann::json* paths = find(group, "paths");
        const nlohmann::json* weights = find(group, "weights");
        if (!paths || !paths->is_array() || !weights || !weights->is_array())
            throw bad("a weight group lacks 'paths' or 'weights'");
        for (const auto& p : *paths) {
            if (!p.is_string()) throw bad("'paths' holds a non-string");
            blob += read_file(dir / p.get<std::string>(), "weights file");
            bin_names += (bin_names.empty() ? "" : ", ") + (dir / p.get<std::string>()).string();
        }
        for (const auto& w : *weights) entries.push_back(&w);
    }

    FaceResNet net;
    auto params = net->named_parameters(true);
    std::set<std::string> assigned;
    std::size_t offset = 0;
    torch::NoGradGuard no_grad;
    for (const nlohmann::json* w : entries) {
        const nlohmann::json* name_value = find(*w, "name");
        const nlohmann::json* shape = find(*w, "shape");
        const nlohmann::json* dtype = find(*w, "dtype");
        if (!name_value || !name_value->is_string() || !shape || !shape->is_array())
            throw bad("a weight entry lacks 'name' or 'shape'");
        const std::string name = name_value->get<std::string>();
        if (dtype && (!dtype->is_string() || dtype->get<std::string>() != "float32"))
            throw bad("tensor '" + name + "': unsupported dtype");
        std::vector<int64_t> dims;
        int64_t numel = 1;
        for (const auto& d : *shape) {
            if (!d.is_number() || d.get<double>() < 0) throw bad("tensor '" + name + "': bad shape");
            dims.push_back(static_cast<int64_t>(d.get<double>()));
            numel *= dims.back();
        }
        const std::string pname = parameter_name(name);
        if (pname.empty() || !params.contains(pname))
            throw bad("unknown tensor '" + name + "' (not a dlib-resnet29 parameter)");
        if (!assigned.insert(pname).second) throw bad("tensor '" + name + "' listed twice");

        const nlohmann::json* quant = find(*w, "quantization");
        const std::size_t bytes = static_cast<std::size_t>(numel) * (quant ? 1 : 4);
        if (offset + bytes > blob.size())
            throw std::runtime_error("weights file " + bin_names + ": too short (" + std::to_string(blob.size()) +
                                     " bytes; tensor '" + name + "' needs bytes up to " +
                                     std::to_string(offset + bytes) + ")");
        torch::Tensor t = torch::empty(dims, torch::kFloat);
        float* dst = t.data_ptr<float>();
        const auto* src = reinterpret_cast<const unsigned char*>(blob.data() + offset);
        if (quant) {
            const nlohmann::json* qd = find(*quant, "dtype");
            const nlohmann::json* scale = find(*quant, "scale");
            const nlohmann::json* min = find(*quant, "min");
            if (!qd || !qd->is_string() || qd->get<std::string>() != "uint8" || !scale || !scale->is_number() || !min ||
                !min->is_number())
                throw bad("tensor '" + name + "': unsupported quantization (need uint8 with scale, min)");
            const double sc = scale->get<double>(), mn = min->get<double>();
            for (int64_t i = 0; i < numel; ++i) dst[i] = static_cast<float>(static_cast<double>(src[i]) * sc + mn);
        } else {
            std::memcpy(dst, src, bytes);  // little-endian float32, as on every supported host
        }
        offset += bytes;

        torch::Tensor& target = params[pname];
        if (t.dim() == 4) t = t.permute({3, 2, 0, 1});   // HWIO -> OIHW
        else if (pname == "fc.weight") t = t.t();         // [256,128] -> Linear weight [128,256]
        if (t.sizes() != target.sizes())
            throw bad("tensor '" + name + "': shape " + c10::str(t.sizes()) + " does not fit " + pname + " " +
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
