// Metrics: a small registry of labelled counters and gauges, rendered in the Prometheus text
// exposition format (version 0.0.4).
//
// WHAT THIS REPRESENTS
//   A set of metric families (name, type, help), each holding one value per label set.
//   Modules report into it (cameras, store, scheduler, gate, publisher); the HTTP endpoint
//   (metrics_server.hpp) renders it on /metrics.
// THREAD SAFETY
//   Every member function may be called from any thread at any time (one internal mutex).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace faceadapt::daemon {

// Label name -> value, e.g. {{"camera", "door1"}}. Order does not matter (kept sorted).
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { counter, gauge };

class MetricsRegistry {
public:
    // Declares a family. requires: name matches [a-zA-Z_:][a-zA-Z0-9_:]*.
    // throws std::invalid_argument naming the metric on a bad name or a type conflict.
    // Declaring the same family twice with the same type is allowed (no-op).
    void describe(const std::string& name, MetricType type, const std::string& help);

    // Sets the sample (name, labels) to value. Used for gauges and for counters copied from a
    // module's own monotonic totals. throws std::invalid_argument if `name` was not described.
    void set(const std::string& name, const Labels& labels, double value);
    // Adds delta to the sample (created at 0). requires: delta >= 0 for counters.
    void add(const std::string& name, const Labels& labels, double delta = 1.0);
    // Removes one sample (e.g. a camera removed on reload); no-op when absent.
    void remove(const std::string& name, const Labels& labels);
    // Removes every sample of every family that carries label `key` = `value`.
    void remove_matching(const std::string& key, const std::string& value);

    // The sample's value; 0 when absent. throws std::invalid_argument if `name` is unknown.
    double value(const std::string& name, const Labels& labels = {}) const;
    // Every sample of a family (labels sorted by name), e.g. for the console's overview.
    // throws std::invalid_argument if `name` is unknown.
    std::vector<std::pair<Labels, double>> samples(const std::string& name) const;

    // ensures: "# HELP", "# TYPE" then one line per sample, families in name order; label
    //          values escaped (backslash, quote, newline); integers printed without exponent.
    std::string render() const;

private:
    struct Family {
        MetricType type = MetricType::gauge;
        std::string help;
        std::map<Labels, double> samples;
    };
    Family& family(const std::string& name);
    const Family& family(const std::string& name) const;
    mutable std::mutex mutex_;
    std::map<std::string, Family> families_;
};

// "a\"b\\c\n" -> a\"b\\c\n as Prometheus wants inside label quotes.
std::string escape_label_value(std::string_view value);
// Number formatting for the exposition: 3, 0.25, 1e-05, +Inf, NaN.
std::string format_metric_value(double value);

}  // namespace faceadapt::daemon
