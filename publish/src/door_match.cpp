#include "faceadapt/publish/door_match.hpp"

#include <cmath>

namespace faceadapt::publish {

calib::DoorDecision decide_probe(const Gallery& gallery, double margin, const Embedding& probe) {
    std::vector<std::pair<std::string, double>> entries;
    entries.reserve(gallery.entries.size());
    for (const auto& e : gallery.entries) entries.emplace_back(e.name, calib::euclidean(e.embedding, probe));
    return calib::decide(entries, gallery.threshold, margin);
}

}  // namespace faceadapt::publish
