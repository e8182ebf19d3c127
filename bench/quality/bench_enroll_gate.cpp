// Does the enrollment gate accept what the model can recognise? On LFW devtest
// (../shared/datasets/lfw-devtest: web photos, the source model's domain), every person with at
// least two photos is "enrolled" from one ordinary photo (the first, by file name); that photo's
// recognisability is its mean distance (source model) to the same person's other photos. For the
// site-crop gate (config::QualityConfig, tuned on Yale B crops, as enrollment used it before) and
// for the enrollment gate (config::EnrollConfig), prints how many people can be enrolled and the
// mean recognisability distance of the accepted and the refused photos, and the reasons refused.
//
//   bench_enroll_gate [--people N] [--dump FILE.csv]
//
// --people: only the first N people (by name) with two or more photos (default: all).
// --dump:   one CSV row per enrollment photo (features, face side, distance, both verdicts).
// Skips (exit 0, a message) when the dataset or the source weights are absent.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "bench_datasets.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/learner/embedder.hpp"
#include "faceadapt/quality/enroll_gate.hpp"
#include "faceadapt/quality/quality.hpp"

namespace fs = std::filesystem;
namespace q = faceadapt::quality;

namespace {

struct Photo {
    std::string person;
    fs::path file;
    int faces = 0;
    bool dominant = false;  // one face, or the largest at least twice the area of every other
    int side = 0;
    q::QualityFeatures f;
    faceadapt::learner::Embedding e{};
};

struct Tally {
    int accepted = 0, refused = 0;
    double accepted_sum = 0, refused_sum = 0;
    std::map<std::string, int> reasons;
    void add(bool ok, double distance, const std::string& why) {
        if (ok) ++accepted, accepted_sum += distance;
        else ++refused, refused_sum += distance, ++reasons[why];
    }
    void print(const char* label) const {
        const int n = accepted + refused;
        std::printf("%-44s enrolled %d of %d (%.1f%%); mean distance to own other photos: accepted %.4f, refused %s\n",
                    label, accepted, n, n ? 100.0 * accepted / n : 0.0, accepted ? accepted_sum / accepted : 0.0,
                    refused ? std::to_string(refused_sum / refused).substr(0, 6).c_str() : "-");
        for (const auto& [why, count] : reasons) std::printf("    refused %3d: %s\n", count, why.c_str());
    }
};

// The reason's kind, without its figures (for the tally).
std::string kind_of(const std::string& reason) {
    const auto colon = reason.find(':');
    std::string k = reason.substr(0, colon);
    const auto digit = k.find_first_of("0123456789");
    return digit == std::string::npos ? k : k.substr(0, digit);
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t max_people = 0;
    fs::path dump;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--people") max_people = std::stoul(argv[i + 1]);
        else if (a == "--dump") dump = argv[i + 1];
        else {
            std::fprintf(stderr, "usage: bench_enroll_gate [--people N] [--dump FILE.csv]\n");
            return 2;
        }
    }
    const fs::path lfw = fs::path(FACEADAPT_SHARED_DIR) / "datasets" / "lfw-devtest" / "images";
    if (!faceadapt::bench::dataset_present(lfw)) return 0;
    const auto embedder = faceadapt::bench::source_embedder_or_skip();
    if (!embedder) return 0;
    std::vector<std::vector<fs::path>> people;
    for (const auto& d : faceadapt::bench::sorted_subfolders(lfw)) {
        std::vector<fs::path> files;
        for (const auto& f : fs::directory_iterator(d))
            if (f.path().extension() == ".jpg") files.push_back(f.path());
        if (files.size() < 2) continue;
        std::sort(files.begin(), files.end());
        people.push_back(std::move(files));
        if (max_people && people.size() == max_people) break;
    }
    const faceadapt::config::DetectConfig detect;
    const faceadapt::ingest::FaceAligner aligner(detect.landmarks_model);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::vector<Photo>> photos(people.size());
    std::vector<cv::Mat> chips;
    std::vector<std::pair<std::size_t, std::size_t>> where;
    for (std::size_t p = 0; p < people.size(); ++p)
        for (const auto& file : people[p]) {
            Photo ph;
            ph.person = file.parent_path().filename().string();
            ph.file = file;
            const cv::Mat img = cv::imread(file.string(), cv::IMREAD_COLOR);
            auto faces = img.empty() ? std::vector<faceadapt::ingest::AlignedFace>{} : aligner.detect(img);
            ph.faces = static_cast<int>(faces.size());
            if (!faces.empty()) {
                // The largest face: a web photo may show bystanders.
                std::vector<cv::Rect> boxes;
                for (const auto& f : faces) boxes.push_back(f.bbox);
                ph.dominant = q::dominant_face(boxes).has_value();
                const auto& face = *std::max_element(faces.begin(), faces.end(), [](const auto& a, const auto& b) {
                    return a.bbox.area() < b.bbox.area();
                });
                ph.side = std::min(face.bbox.width, face.bbox.height);
                ph.f = q::compute_features(q::observation_from_still(img, face.bbox, face.landmarks, face.chip));
                chips.push_back(face.chip);
                where.emplace_back(p, photos[p].size());
            }
            photos[p].push_back(std::move(ph));
        }
    std::size_t total_photos = 0;
    for (const auto& files : people) total_photos += files.size();
    const auto embeddings = embedder->embed(chips);
    for (std::size_t i = 0; i < where.size(); ++i) photos[where[i].first][where[i].second].e = embeddings[i];
    std::printf("bench_enroll_gate: %zu LFW devtest people with 2+ photos, %zu photos, %zu faces detected+embedded "
                "in %.1f s\n", people.size(), total_photos, chips.size(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

    const q::QualityScorer site_scorer(faceadapt::config::QualityConfig{});
    const faceadapt::config::EnrollConfig enroll_config;
    Tally site, gate, gate_half[2];  // gate_half: people at even / odd positions (by name)
    std::ofstream csv;
    if (!dump.empty()) {
        csv.open(dump);
        csv << "position,dominant,person,file,faces,side,yaw,pitch,roll,deviation,integrity,density,entropy,sharpness,exposure,"
               "contrast,ambient,site_score,site_ok,enroll_ok,distance\n";
    }
    std::size_t position = 0;
    for (auto& mine : photos) {
        const std::size_t half = position++ % 2;
        const Photo& enrol = mine.front();
        if (enrol.faces == 0) continue;  // no face: no gate can enroll it; counted neither way
        double sum = 0;
        int n = 0;
        for (std::size_t j = 1; j < mine.size(); ++j)
            if (mine[j].faces > 0) sum += faceadapt::learner::euclidean_distance(enrol.e, mine[j].e), ++n;
        if (n == 0) continue;  // nothing to measure its recognisability against
        const double distance = sum / n;
        const auto site_score = site_scorer.score(enrol.f);
        std::string site_reason = enrol.faces > 1 ? "several faces" : kind_of(site_score.reason);
        const bool site_ok = enrol.faces == 1 && enrol.side >= detect.min_face_px && site_score.accepted;
        if (enrol.side < detect.min_face_px) site_reason = "face too small";
        site.add(site_ok, distance, site_reason);
        const auto verdict = q::judge_enrollment(enrol.f, enrol.side, detect.min_face_px, enroll_config);
        const bool gate_ok = enrol.dominant && verdict.ok;
        const std::string why = !enrol.dominant ? "several faces, none dominant" : kind_of(verdict.reason);
        gate.add(gate_ok, distance, why);
        gate_half[half].add(gate_ok, distance, why);
        if (csv)
            csv << position - 1 << ',' << enrol.dominant << ',' << enrol.person << ',' << enrol.file.filename().string() << ',' << enrol.faces << ',' << enrol.side
                << ',' << enrol.f.yaw_deg << ',' << enrol.f.pitch_deg << ',' << enrol.f.roll_deg << ','
                << enrol.f.deviation_deg << ',' << enrol.f.integrity << ',' << enrol.f.density << ','
                << enrol.f.entropy << ',' << enrol.f.sharpness << ',' << enrol.f.exposure << ',' << enrol.f.contrast
                << ',' << enrol.f.ambient << ',' << site_score.normalized << ',' << site_ok << ',' << gate_ok << ','
                << distance << '\n';
    }
    site.print("site-crop gate ([quality], Yale B tuned):");
    gate.print("enrollment gate ([enroll]):");
    gate_half[0].print("  its bounds were chosen on these (even):");
    gate_half[1].print("  held out from the choice (odd):");
    const int n = gate.accepted + gate.refused;
    const bool enough = n > 0 && gate.accepted >= 0.9 * n;
    const bool worse = gate.refused == 0 || gate.refused_sum / gate.refused > gate.accepted_sum / gate.accepted;
    std::printf("targets: at least 90%% enrolled: %s; refused photos farther from their own person: %s\n",
                enough ? "yes" : "NO", worse ? (gate.refused ? "yes" : "yes (none refused)") : "NO");
    return 0;
}
