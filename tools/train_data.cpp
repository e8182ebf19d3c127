// The train command's input; see train_data.hpp.
#include "train_data.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <opencv2/imgproc.hpp>
#include <torch/types.h>

#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/ingest/face_batch.hpp"
#include "faceadapt/ingest/face_landmarks.hpp"
#include "faceadapt/ingest/image_file.hpp"
#include "faceadapt/learner/face_resnet.hpp"
#include "faceadapt/learner/training_data.hpp"
#include "faceadapt/quality/enhancer.hpp"

namespace faceadapt::tools {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kBlock = 256;             // images decoded and enhanced per round
constexpr int64_t kDayMs = 86'400'000;

// A store snapshot's index.csv: id,camera,unix_ms,track,score,file (file relative to data).
std::vector<TrainingInput> read_index(const fs::path& data) {
    std::vector<TrainingInput> out;
    for (auto& r : learner::read_snapshot_index(data / "index.csv")) {
        TrainingInput t;
        t.key.camera = r.camera;
        t.key.day = r.unix_ms / kDayMs;
        t.key.track = r.track;
        t.file = r.file.is_absolute() ? r.file : data / r.file;
        t.row = std::move(r);
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace

std::vector<TrainingInput> list_training_inputs(const fs::path& data) {
    if (!fs::is_directory(data)) throw std::invalid_argument("--data: no such folder: " + data.string());
    std::vector<TrainingInput> out;
    if (fs::is_regular_file(data / "index.csv")) {
        out = read_index(data);
    } else {
        for (const auto& e : fs::recursive_directory_iterator(data)) {
            if (!e.is_regular_file() || !ingest::has_image_extension(e.path())) continue;
            TrainingInput t;
            t.file = e.path();
            t.row.id = -1;
            const auto rel = fs::relative(e.path(), data);
            if (std::distance(rel.begin(), rel.end()) > 1) t.key.camera = rel.begin()->string();
            out.push_back(std::move(t));
        }
    }
    // Path order either way: the order the chips had before the sample existed (the co-trainer's
    // results depend on it), so a store under the bound trains exactly as it did.
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.file < b.file; });
    if (out.empty()) throw std::invalid_argument("--data: no images under " + data.string());
    return out;
}

namespace {

// The block loop shared by both inputs. load(i, worker, rgb_chip) fills the 150x150 RGB chip of
// input i and returns "" or why it was skipped ("no face" counts apart).
template <typename Load>
PreparedViews make_views(int64_t n, const ViewOptions& o, unsigned workers, Load load) {
    if (o.views != "quality" && o.views != "tensor")
        throw std::invalid_argument("--views: '" + o.views + "' is not quality or tensor");
    constexpr int kChip = learner::kChipSize;
    constexpr int64_t kChipBytes = int64_t{kChip} * kChip * 3;
    const auto first = quality::Enhancer::first_view(), second = quality::Enhancer::second_view();
    learner::ChipFileWriter out1(o.view1, kChip, kChip);
    std::unique_ptr<learner::ChipFileWriter> out2;
    if (o.second_view) out2 = std::make_unique<learner::ChipFileWriter>(o.view2, kChip, kChip);
    PreparedViews r;
    std::mutex mutex;
    // One block: raw chips (RGB), then the views, then the usable ones appended in input order.
    std::vector<uint8_t> raw(kBlock * kChipBytes), v1(kBlock * kChipBytes), v2(kBlock * kChipBytes);
    std::vector<char> ok(kBlock);
    for (int64_t b = 0; b < n; b += kBlock) {
        const int64_t m = std::min(kBlock, n - b);
        std::fill(ok.begin(), ok.end(), 0);
        std::atomic<int64_t> next{0};
        auto work = [&](unsigned w) {
            for (int64_t i = next++; i < m; i = next++) {
                cv::Mat chip(kChip, kChip, CV_8UC3, raw.data() + i * kChipBytes);
                std::string why;
                try {  // a bad file costs its own chip only, never the run
                    why = load(b + i, w, chip);
                    if (why.empty() && o.views == "quality") {
                        first.apply(chip).copyTo(cv::Mat(kChip, kChip, CV_8UC3, v1.data() + i * kChipBytes));
                        if (out2) second.apply(chip).copyTo(cv::Mat(kChip, kChip, CV_8UC3, v2.data() + i * kChipBytes));
                    }
                } catch (const std::exception& e) {
                    why = "input " + std::to_string(b + i) + ": " + e.what();
                }
                if (!why.empty()) {
                    std::lock_guard lock(mutex);
                    if (why == "no face") {
                        ++r.no_face;
                        continue;
                    }
                    ++r.unreadable;
                    if (r.first_errors.size() < 5) r.first_errors.push_back(why);
                    continue;
                }
                ok[i] = 1;
            }
        };
        std::vector<std::thread> threads;
        for (unsigned w = 0; w < workers; ++w) threads.emplace_back(work, w);
        for (auto& t : threads) t.join();
        if (o.views == "tensor") {
            const auto block = torch::from_blob(raw.data(), {m, kChip, kChip, 3}, torch::kUInt8);
            const auto e1 = learner::enhance_chips(block, learner::kFirstViewSpec);
            std::memcpy(v1.data(), e1.data_ptr<uint8_t>(), static_cast<size_t>(m * kChipBytes));
            if (out2) {
                const auto e2 = learner::enhance_chips(block, learner::kSecondViewSpec);
                std::memcpy(v2.data(), e2.data_ptr<uint8_t>(), static_cast<size_t>(m * kChipBytes));
            }
        }
        for (int64_t i = 0; i < m; ++i) {
            if (!ok[i]) continue;
            out1.append(v1.data() + i * kChipBytes, 1);
            r.used_inputs.push_back(b + i);
            if (out2) out2->append(v2.data() + i * kChipBytes, 1);
        }
    }
    out1.finish();
    if (out2) out2->finish();
    r.used = out1.count();
    r.set1 = std::make_shared<learner::ChipFile>(o.view1);
    if (out2) r.set2 = std::make_shared<learner::ChipFile>(o.view2);
    return r;
}

unsigned worker_count() { return std::max(1u, std::thread::hardware_concurrency()); }

}  // namespace

PreparedViews prepare_training_views(const std::vector<TrainingInput>& inputs, const ViewOptions& o) {
    constexpr int kChip = learner::kChipSize;
    const unsigned workers = worker_count();
    std::vector<std::unique_ptr<ingest::FaceAligner>> aligners(workers);
    if (!o.chips_only) {
        const auto landmarks = std::make_shared<const ingest::LandmarkModel>(ingest::LandmarkModel::default_path());
        for (auto& a : aligners) a = std::make_unique<ingest::FaceAligner>(landmarks);
    }
    ingest::ImageLimits limits;
    if (o.chips_only) limits.exact_width = limits.exact_height = kChip;
    return make_views(static_cast<int64_t>(inputs.size()), o, workers, [&](int64_t i, unsigned w, cv::Mat& chip) {
        auto img = ingest::read_image_bounded(inputs[i].file, limits);
        if (img.bgr.empty()) return img.error;
        if (aligners[w]) {
            auto faces = aligners[w]->detect(img.bgr);
            if (faces.empty()) return std::string("no face");
            faces.front().chip.copyTo(chip);
        } else {
            cv::cvtColor(img.bgr, chip, cv::COLOR_BGR2RGB);
        }
        return std::string();
    });
}

PreparedViews prepare_training_views(const learner::ChipSource& chips, const std::vector<size_t>& sample,
                                     const ViewOptions& o) {
    if (chips.height() != learner::kChipSize || chips.width() != learner::kChipSize)
        throw std::invalid_argument("--data: the chips file's chips are not 150x150");
    return make_views(static_cast<int64_t>(sample.size()), o, worker_count(),
                      [&](int64_t i, unsigned, cv::Mat& chip) {
                          chips.read(static_cast<int64_t>(sample[i]), chip.data);
                          return std::string();
                      });
}

learner::SiteStructure training_structure(const std::vector<TrainingInput>& inputs, const PreparedViews& views,
                                          const fs::path& constraints_csv, learner::StructureCounts* counts) {
    std::vector<learner::SnapshotRow> rows;
    rows.reserve(inputs.size());
    for (const auto& in : inputs) rows.push_back(in.row);
    const auto all = learner::site_structure(rows, learner::read_constraints(constraints_csv), counts);
    return all.subset(views.used_inputs);
}

double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}

}  // namespace faceadapt::tools
