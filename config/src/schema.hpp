// Internal to faceadapt_config: a tiny schema engine. Each section of the site file is a list of
// Field<S>, one per key, that knows how to read its key from a toml++ node into S (reporting
// located issues) and how to write it back as TOML text. parse_config, to_toml and known_keys
// all walk the same lists, so a key exists in all three or in none.
//
// THREAD SAFETY: a Reader belongs to one parse; Field lists are immutable values.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "checks.hpp"
#include "faceadapt/config/config.hpp"

namespace faceadapt::config::detail {

// Collects the issues of one parse, located in `file`; resolves relative paths against it.
class Reader {
public:
    explicit Reader(std::filesystem::path file) : file_(std::move(file)) {
        std::error_code ec;  // a relative name means relative to the working directory
        base_ = std::filesystem::absolute(file_.empty() ? "." : file_, ec).parent_path();
    }

    void add(const toml::source_region& where, std::string key_path, std::string message) {
        issues_.push_back({file_, static_cast<int>(where.begin.line),
                           static_cast<int>(where.begin.column), std::move(key_path),
                           std::move(message)});
    }
    // A relative path in the file means relative to the file's directory.
    std::filesystem::path resolve(const std::filesystem::path& p) const {
        if (p.empty() || p.is_absolute()) return p;
        return (base_ / p).lexically_normal();
    }
    const std::filesystem::path& file() const { return file_; }
    bool ok() const { return issues_.empty(); }
    // ensures: the issues in file order (line, then column), stable for equal locations.
    std::vector<ConfigIssue> take();

private:
    std::filesystem::path file_;
    std::filesystem::path base_;
    std::vector<ConfigIssue> issues_;
};

// "a string", "an integer", ... for "got ..." messages. Never the value itself.
std::string type_phrase(const toml::node& node);
// A TOML basic string literal for `text`, escaped.
std::string quote(std::string_view text);
// "[a, b)" style interval text.
std::string interval(double lo, double hi, bool lo_open, bool hi_open);
// Where to point for `key` of `table`: its value when present, else the table itself.
toml::source_region where(const toml::table& table, std::string_view key);

template <class S>
struct Field {
    std::string name;
    std::string expected;  // what a valid value looks like, for messages
    bool required = false;
    std::function<void(Reader&, const toml::node&, const std::string& key_path, S&)> read;
    std::function<std::string(const S&)> write;  // the value as TOML text
};

template <class S>
Field<S> required(Field<S> field) {
    field.required = true;
    return field;
}

// An integer in [lo, hi]; `extra` may refuse values inside the range with its own message.
template <class S>
Field<S> integer(std::string name, int S::*member, std::int64_t lo, std::int64_t hi,
                 std::function<Problem(std::int64_t)> extra = {}) {
    std::string expected = "an integer in " + interval(double(lo), double(hi), false, false);
    auto read = [=](Reader& r, const toml::node& node, const std::string& key, S& s) {
        const auto* v = node.as_integer();
        if (!v) return r.add(node.source(), key, "expected " + expected + ", got " + type_phrase(node));
        const std::int64_t x = v->get();
        if (x < lo || x > hi)
            return r.add(node.source(), key, "expected " + expected + ", got " + std::to_string(x));
        if (extra) {
            if (auto problem = extra(x)) return r.add(node.source(), key, *problem);
        }
        s.*member = static_cast<int>(x);
    };
    auto write = [=](const S& s) { return std::to_string(s.*member); };
    return {std::move(name), expected, false, read, write};
}

// A number (integer or float) in the interval; open ends exclude the bound.
template <class S>
Field<S> real(std::string name, double S::*member, double lo, double hi, bool lo_open = false,
              bool hi_open = false) {
    std::string expected = "a number in " + interval(lo, hi, lo_open, hi_open);
    auto read = [=](Reader& r, const toml::node& node, const std::string& key, S& s) {
        double x = 0;
        if (const auto* i = node.as_integer()) x = static_cast<double>(i->get());
        else if (const auto* f = node.as_floating_point()) x = f->get();
        else return r.add(node.source(), key, "expected " + expected + ", got " + type_phrase(node));
        const bool inside = (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
        if (!inside)
            return r.add(node.source(), key, "expected " + expected + ", got " + format_number(x));
        s.*member = x;
    };
    auto write = [=](const S& s) {  // always a TOML float: 5 -> 5.0
        std::string text = format_number(s.*member);
        if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
        return text;
    };
    return {std::move(name), expected, false, read, write};
}

// A string; `check` (optional) refuses bad values with its own message.
template <class S>
Field<S> text(std::string name, std::string S::*member, std::string expected,
              std::function<Problem(const std::string&)> check = {}) {
    auto read = [=](Reader& r, const toml::node& node, const std::string& key, S& s) {
        const auto* v = node.as_string();
        if (!v) return r.add(node.source(), key, "expected " + expected + ", got " + type_phrase(node));
        if (check) {
            if (auto problem = check(v->get())) return r.add(node.source(), key, *problem);
        }
        s.*member = v->get();
    };
    auto write = [=](const S& s) { return quote(s.*member); };
    return {std::move(name), std::move(expected), false, read, write};
}

// One of a fixed set of strings, with a suggestion for a near miss.
template <class S>
Field<S> choice(std::string name, std::string S::*member, std::vector<std::string> options) {
    std::string list;
    for (const auto& o : options) list += (list.empty() ? "" : "|") + o;
    std::string expected = "one of " + list;
    auto check = [=](const std::string& v) -> Problem {
        if (std::find(options.begin(), options.end(), v) != options.end()) return std::nullopt;
        return "expected " + expected + ", got '" + v + "'" + did_you_mean(v, options);
    };
    return text<S>(std::move(name), member, expected, check);
}

// A filesystem path, resolved against the file's directory when relative.
template <class S>
Field<S> path(std::string name, std::filesystem::path S::*member, bool allow_empty = true) {
    std::string expected = allow_empty ? "a path (string)" : "a non-empty path (string)";
    auto read = [=](Reader& r, const toml::node& node, const std::string& key, S& s) {
        const auto* v = node.as_string();
        if (!v) return r.add(node.source(), key, "expected " + expected + ", got " + type_phrase(node));
        if (!allow_empty && v->get().empty())
            return r.add(node.source(), key, "expected " + expected + ", got an empty string");
        s.*member = r.resolve(v->get());
    };
    auto write = [=](const S& s) { return quote((s.*member).string()); };
    return {std::move(name), expected, false, read, write};
}

// An array of at most `max_items` strings, each passing `check` (its own message, located at
// the item).
template <class S>
Field<S> strings(std::string name, std::vector<std::string> S::*member, std::size_t max_items,
                 std::function<Problem(const std::string&)> check) {
    std::string expected = "an array of at most " + std::to_string(max_items) + " strings";
    auto read = [=](Reader& r, const toml::node& node, const std::string& key, S& s) {
        const auto* array = node.as_array();
        if (!array) return r.add(node.source(), key, "expected " + expected + ", got " + type_phrase(node));
        if (array->size() > max_items)
            return r.add(node.source(), key, "expected " + expected + ", got " + std::to_string(array->size()));
        std::vector<std::string> out;
        for (std::size_t i = 0; i < array->size(); ++i) {
            const toml::node& item = *array->get(i);
            const std::string item_key = key + "[" + std::to_string(i) + "]";
            const auto* v = item.as_string();
            if (!v) return r.add(item.source(), item_key, "expected a string, got " + type_phrase(item));
            if (auto problem = check(v->get())) return r.add(item.source(), item_key, *problem);
            out.push_back(v->get());
        }
        s.*member = std::move(out);
    };
    auto write = [=](const S& s) {
        std::string text = "[";
        for (const auto& v : s.*member) text += (text.size() > 1 ? ", " : "") + quote(v);
        return text + "]";
    };
    return {std::move(name), expected, false, read, write};
}

template <class S>
Field<S> flag(std::string name, bool S::*member) {
    auto read = [=](Reader& r, const toml::node& node, const std::string& key, S& s) {
        const auto* v = node.as_boolean();
        if (!v) return r.add(node.source(), key, "expected true or false, got " + type_phrase(node));
        s.*member = v->get();
    };
    auto write = [=](const S& s) { return std::string(s.*member ? "true" : "false"); };
    return {std::move(name), "true or false", false, read, write};
}

// A piecewise-linear table has at most this many knots (the manifest carries [quality] too).
inline constexpr std::size_t kMaxKnots = 256;

// A piecewise-linear Table: [[x, y], ...], 1 to kMaxKnots knots, x strictly increasing.
template <class S>
Field<S> knots(std::string name, Table S::*member) {
    std::string expected = "an array of [x, y] number pairs with strictly increasing x";
    auto read = [=](Reader& r, const toml::node& node, const std::string& key, S& s) {
        const auto* array = node.as_array();
        if (!array || array->empty())
            return r.add(node.source(), key,
                         "expected " + expected + ", got " +
                             (array ? std::string("an empty array") : type_phrase(node)));
        if (array->size() > kMaxKnots)
            return r.add(node.source(), key,
                         "expected at most " + std::to_string(kMaxKnots) + " knots, got " +
                             std::to_string(array->size()));
        Table table;
        bool good = true;
        for (std::size_t i = 0; i < array->size(); ++i) {
            const toml::node& knot = *array->get(i);
            const std::string knot_key = key + "[" + std::to_string(i) + "]";
            const auto* pair = knot.as_array();
            std::array<double, 2> xy{};
            bool numbers = pair && pair->size() == 2;
            for (std::size_t j = 0; numbers && j < 2; ++j) {
                const auto v = pair->get(j)->value<double>();  // integer or float
                numbers = v.has_value() && std::isfinite(*v);
                if (numbers) xy[j] = *v;
            }
            if (!numbers) {
                r.add(knot.source(), knot_key,
                      "expected a knot [x, y] of two finite numbers, got " +
                          (pair ? "an array of " + std::to_string(pair->size()) + " element(s)"
                                    + (pair->size() == 2 ? " that are not both numbers" : "")
                                : type_phrase(knot)));
                good = false;
                continue;
            }
            if (!table.empty() && !(xy[0] > table.back()[0])) {
                r.add(knot.source(), knot_key,
                      "x must be strictly increasing: " + format_number(xy[0]) +
                          " does not exceed the previous knot's x " +
                          format_number(table.back()[0]));
                good = false;
            }
            table.push_back(xy);
        }
        if (good) s.*member = std::move(table);
    };
    auto write = [=](const S& s) {
        std::string out = "[";
        for (const auto& [x, y] : s.*member)
            out += (out.size() > 1 ? ", [" : "[") + format_number(x) + ", " + format_number(y) + "]";
        return out + "]";
    };
    return {std::move(name), expected, false, read, write};
}

// The names of `fields`, in order.
template <class S>
std::vector<std::string> names_of(const std::vector<Field<S>>& fields) {
    std::vector<std::string> names;
    for (const auto& f : fields) names.push_back(f.name);
    return names;
}

// Reports a key that no field knows, with a suggestion or the list of known keys.
void unknown_key(Reader& r, const toml::key& key, const std::string& key_path,
                 const std::vector<std::string>& known, std::string_view what = "key");

// Reads every key of `table` through `fields`; reports unknown and missing required keys.
template <class S>
void read_table(Reader& r, const toml::table& table, const std::string& prefix,
                const std::vector<Field<S>>& fields, S& out) {
    for (auto&& [key, node] : table) {
        const std::string path = prefix + "." + std::string(key.str());
        // A named copy: clang before 16 cannot capture a structured binding in a lambda.
        const std::string_view name = key.str();
        auto field = std::find_if(fields.begin(), fields.end(),
                                  [&](const Field<S>& f) { return f.name == name; });
        if (field == fields.end()) unknown_key(r, key, path, names_of(fields));
        else field->read(r, node, path, out);
    }
    for (const auto& f : fields) {
        if (f.required && !table.contains(f.name))
            r.add(table.source(), prefix + "." + f.name,
                  "missing required key '" + f.name + "' (expected " + f.expected + ")");
    }
}

// Appends "key = value" lines for every field.
template <class S>
void write_fields(std::string& out, const std::vector<Field<S>>& fields, const S& s) {
    for (const auto& f : fields) out += f.name + " = " + f.write(s) + "\n";
}

}  // namespace faceadapt::config::detail
