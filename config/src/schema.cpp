#include "schema.hpp"

#include <cstdio>

namespace faceadapt::config::detail {

std::vector<ConfigIssue> Reader::take() {
    std::stable_sort(issues_.begin(), issues_.end(), [](const ConfigIssue& a, const ConfigIssue& b) {
        return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return std::move(issues_);
}

std::string type_phrase(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a float";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::array: return "an array";
        case toml::node_type::table: return "a table";
        case toml::node_type::date: return "a date";
        case toml::node_type::time: return "a time";
        case toml::node_type::date_time: return "a date-time";
        default: return "nothing";
    }
}

std::string quote(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(c));
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

std::string interval(double lo, double hi, bool lo_open, bool hi_open) {
    std::string out = lo_open ? "(" : "[";
    out += format_number(lo);
    out += ", ";
    out += format_number(hi);
    out += hi_open ? ")" : "]";
    return out;
}

toml::source_region where(const toml::table& table, std::string_view key) {
    if (const toml::node* node = table.get(key)) return node->source();
    return table.source();
}

void unknown_key(Reader& r, const toml::key& key, const std::string& key_path,
                 const std::vector<std::string>& known, std::string_view what) {
    const std::string name(key.str());
    if (name == "password") {
        return r.add(key.source(), key_path,
                     "plain-text passwords are not accepted; put the password in a file "
                     "(password_file) or an environment variable (password_env)");
    }
    std::string message = "unknown " + std::string(what) + " '" + name + "'";
    if (auto best = nearest(name, known)) {
        message += "; did you mean '" + *best + "'?";
    } else {
        message += "; expected one of: ";
        for (std::size_t i = 0; i < known.size(); ++i) message += (i ? ", " : "") + known[i];
    }
    r.add(key.source(), key_path, message);
}

}  // namespace faceadapt::config::detail
