// A small JSON reader for the learner's own files (the face-api manifest, model-file metadata),
// so that the learner-only build needs libtorch alone. Private to learner/src.
//
// Values keep the [begin, end) span of their source text, so a nested value can be copied out
// verbatim (ModelMetadata::provenance_json).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace faceadapt::learner::json {

struct Value {
    enum class Type { Null, Bool, Number, String, Array, Object };
    Type type = Type::Null;
    bool boolean = false;
    double number = 0.0;
    std::string string;
    std::vector<Value> array;
    std::vector<std::pair<std::string, Value>> object;  // source order
    std::size_t begin = 0, end = 0;                      // span in the parsed text

    bool is_object() const { return type == Type::Object; }
    bool is_array() const { return type == Type::Array; }
    bool is_number() const { return type == Type::Number; }
    bool is_string() const { return type == Type::String; }
    // Member lookup; nullptr when absent or not an object.
    const Value* find(std::string_view key) const;
};

// throws std::runtime_error("... at offset N: what") for malformed text or trailing garbage.
Value parse(std::string_view text);

// A JSON string literal (with quotes) for s, escaping ", \ and control characters.
std::string quote(std::string_view s);

}  // namespace faceadapt::learner::json
