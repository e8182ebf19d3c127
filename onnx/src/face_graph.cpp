#include "faceadapt/onnx/face_graph.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "faceadapt/onnx/proto.hpp"

namespace faceadapt::onnx {

namespace {

using proto::Writer;

// onnx.proto field numbers and enum values used here.
namespace f {
constexpr std::uint32_t kModelIrVersion = 1, kModelProducerName = 2, kModelProducerVersion = 3, kModelDomain = 4,
                        kModelVersion = 5, kModelDoc = 6, kModelGraph = 7, kModelOpset = 8, kModelMetadata = 14;
constexpr std::uint32_t kOpsetDomain = 1, kOpsetVersion = 2;
constexpr std::uint32_t kGraphNode = 1, kGraphName = 2, kGraphInitializer = 5, kGraphDoc = 10, kGraphInput = 11,
                        kGraphOutput = 12;
constexpr std::uint32_t kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kNodeOpType = 4, kNodeAttribute = 5;
constexpr std::uint32_t kAttrName = 1, kAttrI = 3, kAttrInts = 8, kAttrType = 20;
constexpr std::uint32_t kAttrTypeInt = 2, kAttrTypeInts = 7;
constexpr std::uint32_t kTensorDims = 1, kTensorDataType = 2, kTensorName = 8, kTensorRawData = 9;
constexpr std::uint32_t kValueName = 1, kValueType = 2, kTypeTensor = 1, kTensorElemType = 1, kTensorShape = 2,
                        kShapeDim = 1, kDimValue = 1, kDimParam = 2;
constexpr std::uint32_t kEntryKey = 1, kEntryValue = 2;
constexpr std::uint64_t kFloat = 1, kInt64 = 7, kFloat16 = 10;
}  // namespace f

Writer attr_int(const char* name, std::int64_t v) {
    Writer a;
    a.bytes(f::kAttrName, name).varint(f::kAttrI, static_cast<std::uint64_t>(v)).varint(f::kAttrType, f::kAttrTypeInt);
    return a;
}

Writer attr_ints(const char* name, const std::vector<std::int64_t>& v) {
    Writer a;
    a.bytes(f::kAttrName, name);
    for (auto x : v) a.varint(f::kAttrInts, static_cast<std::uint64_t>(x));
    a.varint(f::kAttrType, f::kAttrTypeInts);
    return a;
}

Writer value_info(const std::string& name, const std::vector<std::int64_t>& dims_after_batch) {
    Writer shape;
    Writer batch;
    batch.bytes(f::kDimParam, "N");
    shape.message(f::kShapeDim, batch);
    for (auto d : dims_after_batch) {
        Writer dim;
        dim.varint(f::kDimValue, static_cast<std::uint64_t>(d));
        shape.message(f::kShapeDim, dim);
    }
    Writer tensor;
    tensor.varint(f::kTensorElemType, f::kFloat).message(f::kTensorShape, shape);
    Writer type;
    type.message(f::kTypeTensor, tensor);
    Writer v;
    v.bytes(f::kValueName, name).message(f::kValueType, type);
    return v;
}

void check_finite(const std::vector<float>& v, const std::string& what) {
    for (float x : v)
        if (!std::isfinite(x)) throw std::invalid_argument("ONNX export: " + what + " holds a non-finite value");
}

// Builds nodes and initializers in graph order.
class GraphBuilder {
public:
    explicit GraphBuilder(WeightType weights) : weights_(weights) {}

    // A float initializer; with kFloat16 (and `halvable`) stored as FLOAT16 + a Cast node.
    void tensor(const std::string& name, const std::vector<std::int64_t>& dims, const std::vector<float>& values,
                bool halvable = true) {
        check_finite(values, name);
        const bool half = halvable && weights_ == WeightType::kFloat16;
        Writer t;
        for (auto d : dims) t.varint(f::kTensorDims, static_cast<std::uint64_t>(d));
        t.varint(f::kTensorDataType, half ? f::kFloat16 : f::kFloat);
        t.bytes(f::kTensorName, half ? name + ".f16" : name);
        std::string raw;
        if (half) {
            raw.resize(values.size() * 2);
            for (std::size_t i = 0; i < values.size(); ++i) {
                const auto h = float_to_half(values[i]);
                raw[2 * i] = static_cast<char>(h & 0xff);
                raw[2 * i + 1] = static_cast<char>(h >> 8);
            }
        } else {
            raw.resize(values.size() * 4);
            std::memcpy(raw.data(), values.data(), raw.size());  // little-endian hosts (x86-64, aarch64)
        }
        t.bytes(f::kTensorRawData, raw);
        graph_.message(f::kGraphInitializer, t);
        if (half) node("Cast", {name + ".f16"}, name, name + ".cast", {attr_int("to", static_cast<std::int64_t>(f::kFloat))});
    }

    void int64_tensor(const std::string& name, const std::vector<std::int64_t>& values) {
        Writer t;
        t.varint(f::kTensorDims, values.size()).varint(f::kTensorDataType, f::kInt64).bytes(f::kTensorName, name);
        std::string raw(values.size() * 8, '\0');
        std::memcpy(raw.data(), values.data(), raw.size());
        t.bytes(f::kTensorRawData, raw);
        graph_.message(f::kGraphInitializer, t);
    }

    std::string node(const std::string& op, const std::vector<std::string>& inputs, const std::string& output,
                            const std::string& name, const std::vector<Writer>& attributes = {}) {
        Writer n;
        for (const auto& i : inputs) n.bytes(f::kNodeInput, i);
        n.bytes(f::kNodeOutput, output).bytes(f::kNodeName, name).bytes(f::kNodeOpType, op);
        for (const auto& a : attributes) n.message(f::kNodeAttribute, a);
        graph_.message(f::kGraphNode, n);  // repeated fields keep their order: topological
        return output;
    }

    Writer& graph() { return graph_; }

private:
    WeightType weights_;
    Writer graph_;
};

struct Block {
    const char* name;
    int kind;  // 0 residual, 1 down
    std::int64_t in, out;
};

constexpr Block kBlocks[] = {
    {"conv32_1", 0, 32, 32},     {"conv32_2", 0, 32, 32},     {"conv32_3", 0, 32, 32},
    {"conv64_down", 1, 32, 64},  {"conv64_1", 0, 64, 64},     {"conv64_2", 0, 64, 64},
    {"conv64_3", 0, 64, 64},     {"conv128_down", 1, 64, 128}, {"conv128_1", 0, 128, 128},
    {"conv128_2", 0, 128, 128},  {"conv256_down", 1, 128, 256}, {"conv256_1", 0, 256, 256},
    {"conv256_2", 0, 256, 256},  {"conv256_down_out", 1, 256, 256},
};

}  // namespace

std::vector<std::string> face_resnet_conv_layers() {
    std::vector<std::string> out{"conv32_down"};
    for (const auto& b : kBlocks) {
        out.push_back(std::string(b.name) + ".conv1");
        out.push_back(std::string(b.name) + ".conv2");
    }
    return out;
}

std::string write_face_resnet_onnx(const FaceResNetWeights& w, const ExportOptions& options) {
    GraphBuilder g(options.weights);
    auto conv_node = [&](const std::string& layer, const std::string& x, std::int64_t in, std::int64_t out,
                         std::int64_t k, std::int64_t stride, std::int64_t pad, bool relu) {
        auto it = w.convs.find(layer);
        if (it == w.convs.end()) throw std::invalid_argument("ONNX export: layer " + layer + " is missing");
        const ConvWeights& c = it->second;
        if (c.out != out || c.in != in || c.kernel != k || c.weight.size() != static_cast<std::size_t>(out * in * k * k) ||
            c.bias.size() != static_cast<std::size_t>(out))
            throw std::invalid_argument("ONNX export: layer " + layer + " has shape [" + std::to_string(c.out) + "," +
                                        std::to_string(c.in) + "," + std::to_string(c.kernel) + "], expected [" +
                                        std::to_string(out) + "," + std::to_string(in) + "," + std::to_string(k) + "]");
        g.tensor(layer + ".weight", {out, in, k, k}, c.weight);
        g.tensor(layer + ".bias", {out}, c.bias);
        std::string y = g.node("Conv", {x, layer + ".weight", layer + ".bias"}, layer, layer,
                               {attr_ints("kernel_shape", {k, k}), attr_ints("strides", {stride, stride}),
                                attr_ints("pads", {pad, pad, pad, pad})});
        return relu ? g.node("Relu", {y}, layer + ".relu", layer + ".relu") : y;
    };

    // Normalisation (learner::chips_to_input): (rgb - mean) / 256. The mean is [3,1,1] (not
    // [1,3,1,1], which OpenCV 4.6's Sub importer refuses).
    g.tensor("input.mean", {3, 1, 1}, {kMeanRgb[0], kMeanRgb[1], kMeanRgb[2]}, false);
    g.tensor("input.scale", {1}, {kInputScale}, false);
    std::string x = g.node("Sub", {kInputName, "input.mean"}, "input.centered", "input.centered");
    x = g.node("Mul", {x, "input.scale"}, "input.normalized", "input.normalized");

    std::int64_t side = kChipSide;
    x = conv_node("conv32_down", x, 3, 32, 7, 2, 0, true);
    side = (side - 7) / 2 + 1;
    x = g.node("MaxPool", {x}, "pool", "pool", {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2})});
    side = (side - 3) / 2 + 1;
    for (const auto& b : kBlocks) {
        const std::string name = b.name;
        if (b.kind == 0) {
            auto a = conv_node(name + ".conv1", x, b.in, b.out, 3, 1, 1, true);
            a = conv_node(name + ".conv2", a, b.out, b.out, 3, 1, 1, false);
            auto sum = g.node("Add", {a, x}, name + ".add", name + ".add");
            x = g.node("Relu", {sum}, name, name);
            continue;
        }
        auto a = conv_node(name + ".conv1", x, b.in, b.out, 3, 2, 0, true);
        a = conv_node(name + ".conv2", a, b.out, b.out, 3, 1, 1, false);
        const std::int64_t conv_side = (side - 3) / 2 + 1, skip_side = side / 2;
        if (skip_side != conv_side) {
            // one zero row at the bottom and one zero column at the right (pads: begins then ends, NCHW)
            g.int64_tensor(name + ".pad_hw", {0, 0, 0, 0, 0, 0, skip_side - conv_side, skip_side - conv_side});
            a = g.node("Pad", {a, name + ".pad_hw"}, name + ".padded", name + ".padded");
        }
        auto s = g.node("AveragePool", {x}, name + ".skip", name + ".skip",
                        {attr_ints("kernel_shape", {2, 2}), attr_ints("strides", {2, 2})});
        if (b.out != b.in) {
            g.int64_tensor(name + ".pad_c", {0, 0, 0, 0, 0, b.out - b.in, 0, 0});
            s = g.node("Pad", {s, name + ".pad_c"}, name + ".skip_padded", name + ".skip_padded");
        }
        auto sum = g.node("Add", {a, s}, name + ".add", name + ".add");
        x = g.node("Relu", {sum}, name, name);
        side = skip_side;
    }
    x = g.node("GlobalAveragePool", {x}, "mean_hw", "mean_hw");
    x = g.node("Flatten", {x}, "features", "features", {attr_int("axis", 1)});
    if (w.fc.size() != static_cast<std::size_t>(kEmbeddingDim) * 256)
        throw std::invalid_argument("ONNX export: fc has " + std::to_string(w.fc.size()) + " values, expected 128*256");
    g.tensor("fc.weight", {kEmbeddingDim, 256}, w.fc);
    g.node("Gemm", {x, "fc.weight"}, kOutputName, "fc", {attr_int("transB", 1)});

    Writer& graph = g.graph();
    graph.bytes(f::kGraphName, "faceadapt_resnet29");
    graph.bytes(f::kGraphDoc,
                "dlib ResNet-29 face embedding. input: float [N,3,150,150] RGB 0..255 of a dlib-aligned chip "
                "(get_face_chip_details(68 landmarks, 150, 0.25)); normalised inside the graph as "
                "(rgb - [122.782,117.001,104.298]) / 256. output: raw 128-D embedding; Euclidean distance.");
    graph.message(f::kGraphInput, value_info(kInputName, {3, kChipSide, kChipSide}));
    graph.message(f::kGraphOutput, value_info(kOutputName, {kEmbeddingDim}));

    Writer model;
    model.varint(f::kModelIrVersion, kIrVersion)
        .bytes(f::kModelProducerName, "faceadapt")
        .bytes(f::kModelProducerVersion, options.producer_version)
        .bytes(f::kModelDomain, "org.faceadapt")
        .varint(f::kModelVersion, static_cast<std::uint64_t>(options.model_version))
        .bytes(f::kModelDoc, "faceadapt face embedding model (docs/door-integration.md)");
    Writer opset;
    opset.bytes(f::kOpsetDomain, "").varint(f::kOpsetVersion, kOpset);
    model.message(f::kModelOpset, opset);
    auto meta = options.metadata;
    meta["faceadapt.weights"] = options.weights == WeightType::kFloat16 ? "float16" : "float32";
    meta["faceadapt.input"] = "float [N,3,150,150] RGB 0..255, normalised in the graph";
    // What a package's manifest says of its model part (publish's model check compares them).
    meta["faceadapt.architecture"] = "dlib-resnet29";
    meta["faceadapt.input_size"] = std::to_string(kChipSide);
    meta["faceadapt.embedding_dim"] = std::to_string(kEmbeddingDim);
    for (const auto& [k, v] : meta) {
        Writer e;
        e.bytes(f::kEntryKey, k).bytes(f::kEntryValue, v);
        model.message(f::kModelMetadata, e);
    }
    model.message(f::kModelGraph, graph);
    return model.data();
}

std::uint16_t float_to_half(float value) {
    std::uint32_t x;
    std::memcpy(&x, &value, 4);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    const std::uint32_t exp = (x >> 23) & 0xffu;
    std::uint32_t mant = x & 0x7fffffu;
    if (exp == 0xff) return static_cast<std::uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));  // inf / nan
    const int e = static_cast<int>(exp) - 127 + 15;
    if (e >= 31) return static_cast<std::uint16_t>(sign | 0x7c00u);                           // overflow
    if (e <= 0) {                                                                               // subnormal or zero
        if (e < -10) return static_cast<std::uint16_t>(sign);
        mant |= 0x800000u;
        const int shift = 14 - e;
        std::uint32_t half = mant >> shift;
        const std::uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half & 1))) ++half;
        return static_cast<std::uint16_t>(sign | half);
    }
    std::uint32_t half = (static_cast<std::uint32_t>(e) << 10) | (mant >> 13);
    const std::uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;  // may carry into the exponent: still right
    return static_cast<std::uint16_t>(sign | half);
}

float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = (h & 0x8000u) << 16;
    std::uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (mant << 13);
    else if (exp != 0) bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    else if (mant == 0) bits = sign;
    else {  // subnormal: normalise
        int e = -1;
        do {
            ++e;
            mant <<= 1;
        } while ((mant & 0x400u) == 0);
        bits = sign | (static_cast<std::uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
    float out;
    std::memcpy(&out, &bits, 4);
    return out;
}

std::string expand_float16_initializers(std::string_view model) {
    auto rewrite_tensor = [](std::string_view tensor) -> std::string {
        proto::Reader r(tensor);
        proto::Field fld;
        std::uint64_t type = 0, elements = 1;
        bool has_raw = false, other_data = false;
        std::string name;
        while (r.next(fld)) {
            if (fld.number == f::kTensorDataType) type = fld.value;
            else if (fld.number == f::kTensorDims && fld.type == proto::kVarint)
                elements = fld.value > 0 && elements > (std::uint64_t{1} << 40) / fld.value ? (std::uint64_t{1} << 40)
                                                                                            : elements * fld.value;
            else if (fld.number == f::kTensorRawData) has_raw = true;
            else if (fld.number == f::kTensorName) name = std::string(fld.bytes.substr(0, 200));
            else if (fld.number >= 4 && fld.number <= 7) other_data = true;  // float/int32/string/int64_data
        }
        if (type != f::kFloat16) return std::string(tensor);
        if (!has_raw || other_data)
            throw std::invalid_argument("ONNX FLOAT16 initializer " + name + " is not stored in raw_data");
        Writer out;
        proto::Reader again(tensor);
        while (again.next(fld)) {
            if (fld.number == f::kTensorDataType) {
                out.varint(f::kTensorDataType, f::kFloat);
            } else if (fld.number == f::kTensorRawData) {
                if (fld.bytes.size() % 2 != 0 || fld.bytes.size() / 2 != elements)
                    throw std::invalid_argument("ONNX FLOAT16 initializer " + name + ": " + std::to_string(fld.bytes.size()) +
                                                " bytes for " + std::to_string(elements) + " elements");
                std::string raw(elements * 4, '\0');
                for (std::size_t i = 0; i < elements; ++i) {
                    const auto h = static_cast<std::uint16_t>(static_cast<std::uint8_t>(fld.bytes[2 * i]) |
                                                              static_cast<std::uint8_t>(fld.bytes[2 * i + 1]) << 8);
                    const float v = half_to_float(h);
                    std::memcpy(raw.data() + 4 * i, &v, 4);
                }
                out.bytes(f::kTensorRawData, raw);
            } else {
                out.raw(fld.raw);
            }
        }
        return out.data();
    };
    Writer result;
    proto::Reader r(model);
    proto::Field fld;
    while (r.next(fld)) {
        if (fld.number != f::kModelGraph || fld.type != proto::kLengthDelimited) {
            result.raw(fld.raw);
            continue;
        }
        Writer graph;
        proto::Reader g(fld.bytes);
        proto::Field gf;
        while (g.next(gf)) {
            if (gf.number == f::kGraphInitializer && gf.type == proto::kLengthDelimited)
                graph.bytes(f::kGraphInitializer, rewrite_tensor(gf.bytes));
            else
                graph.raw(gf.raw);
        }
        result.message(f::kModelGraph, graph);
    }
    return result.data();
}

}  // namespace faceadapt::onnx
