#include "faceadapt/daemon/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace faceadapt::daemon {
namespace {

Labels sorted(Labels labels) {
    std::sort(labels.begin(), labels.end());
    return labels;
}

bool valid_name(const std::string& name) {
    static const std::regex re("[a-zA-Z_:][a-zA-Z0-9_:]*");
    return std::regex_match(name, re);
}

}  // namespace

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string format_metric_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    if (value == std::floor(value) && std::fabs(value) < 1e15) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.0f", value);
        return buf;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", value);
    return buf;
}

void MetricsRegistry::describe(const std::string& name, MetricType type, const std::string& help) {
    if (!valid_name(name)) throw std::invalid_argument("metrics: invalid metric name '" + name + "'");
    std::lock_guard lock(mutex_);
    auto [it, inserted] = families_.try_emplace(name);
    if (!inserted && it->second.type != type)
        throw std::invalid_argument("metrics: '" + name + "' already described with another type");
    it->second.type = type;
    it->second.help = help;
}

MetricsRegistry::Family& MetricsRegistry::family(const std::string& name) {
    auto it = families_.find(name);
    if (it == families_.end()) throw std::invalid_argument("metrics: unknown metric '" + name + "'");
    return it->second;
}

const MetricsRegistry::Family& MetricsRegistry::family(const std::string& name) const {
    auto it = families_.find(name);
    if (it == families_.end()) throw std::invalid_argument("metrics: unknown metric '" + name + "'");
    return it->second;
}

void MetricsRegistry::set(const std::string& name, const Labels& labels, double value) {
    std::lock_guard lock(mutex_);
    family(name).samples[sorted(labels)] = value;
}

void MetricsRegistry::add(const std::string& name, const Labels& labels, double delta) {
    std::lock_guard lock(mutex_);
    auto& f = family(name);
    if (f.type == MetricType::counter && delta < 0)
        throw std::invalid_argument("metrics: counter '" + name + "' cannot decrease");
    f.samples[sorted(labels)] += delta;
}

void MetricsRegistry::remove(const std::string& name, const Labels& labels) {
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it != families_.end()) it->second.samples.erase(sorted(labels));
}

void MetricsRegistry::remove_matching(const std::string& key, const std::string& value) {
    std::lock_guard lock(mutex_);
    for (auto& [name, f] : families_) {
        std::erase_if(f.samples, [&](const auto& sample) {
            return std::find(sample.first.begin(), sample.first.end(), std::pair{key, value}) !=
                   sample.first.end();
        });
    }
}

double MetricsRegistry::value(const std::string& name, const Labels& labels) const {
    std::lock_guard lock(mutex_);
    const auto& f = family(name);
    auto it = f.samples.find(sorted(labels));
    return it == f.samples.end() ? 0.0 : it->second;
}

std::vector<std::pair<Labels, double>> MetricsRegistry::samples(const std::string& name) const {
    std::lock_guard lock(mutex_);
    const auto& f = family(name);
    return {f.samples.begin(), f.samples.end()};
}

std::string MetricsRegistry::render() const {
    std::lock_guard lock(mutex_);
    std::ostringstream out;
    for (const auto& [name, f] : families_) {
        std::string help;
        for (char c : f.help) help += c == '\n' ? std::string("\\n") : c == '\\' ? std::string("\\\\") : std::string(1, c);
        out << "# HELP " << name << ' ' << help << '\n';
        out << "# TYPE " << name << ' ' << (f.type == MetricType::counter ? "counter" : "gauge") << '\n';
        for (const auto& [labels, v] : f.samples) {
            out << name;
            if (!labels.empty()) {
                out << '{';
                for (std::size_t i = 0; i < labels.size(); ++i) {
                    if (i) out << ',';
                    out << labels[i].first << "=\"" << escape_label_value(labels[i].second) << '"';
                }
                out << '}';
            }
            out << ' ' << format_metric_value(v) << '\n';
        }
    }
    return out.str();
}

}  // namespace faceadapt::daemon
