// Views, augmentation, sampler, prefetcher, chip files; see training_data.hpp.
#include "faceadapt/learner/training_data.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>


namespace faceadapt::learner {
namespace {

void check_chips(const torch::Tensor& chips, const char* who) {
    if (!chips.defined() || chips.dim() != 4 || chips.size(3) != 3 || chips.scalar_type() != torch::kUInt8 ||
        !chips.device().is_cpu())
        throw std::invalid_argument(std::string(who) + ": chips must be a CPU uint8 tensor [N,H,W,3]");
}

inline uint8_t clamp_u8(double v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }
inline double luma(const uint8_t* p) { return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]; }

// Scales each pixel's RGB so that its luma becomes map[luma] (colour ratios kept).
void remap_luma(uint8_t* img, int64_t pixels, const std::array<double, 256>& map) {
    for (int64_t i = 0; i < pixels; ++i) {
        uint8_t* p = img + 3 * i;
        const double y = luma(p);
        const int yi = std::clamp(static_cast<int>(std::lround(y)), 0, 255);
        if (y < 0.5) {
            for (int c = 0; c < 3; ++c) p[c] = clamp_u8(map[yi]);
            continue;
        }
        const double f = map[yi] / y;
        for (int c = 0; c < 3; ++c) p[c] = clamp_u8(p[c] * f);
    }
}

void stretch(uint8_t* img, int64_t pixels) {
    std::array<int64_t, 256> hist{};
    for (int64_t i = 0; i < pixels; ++i) ++hist[std::clamp(static_cast<int>(std::lround(luma(img + 3 * i))), 0, 255)];
    int lo = 0, hi = 255;
    int64_t acc = 0;
    for (lo = 0; lo < 255 && (acc += hist[lo]) <= pixels / 100; ++lo) {}
    acc = 0;
    for (hi = 255; hi > 0 && (acc += hist[hi]) <= pixels / 100; --hi) {}
    if (hi <= lo) return;
    std::array<double, 256> map{};
    for (int v = 0; v < 256; ++v) map[v] = std::clamp((v - lo) * 255.0 / (hi - lo), 0.0, 255.0);
    remap_luma(img, pixels, map);
}

void equalize(uint8_t* img, int64_t pixels) {
    std::array<int64_t, 256> hist{};
    for (int64_t i = 0; i < pixels; ++i) ++hist[std::clamp(static_cast<int>(std::lround(luma(img + 3 * i))), 0, 255)];
    std::array<double, 256> map{};
    int64_t acc = 0, first = 0;
    for (int v = 0; v < 256; ++v)
        if (hist[v]) { first = hist[v]; break; }
    for (int v = 0; v < 256; ++v) {
        acc += hist[v];
        map[v] = pixels > first ? std::clamp((acc - first) * 255.0 / static_cast<double>(pixels - first), 0.0, 255.0) : v;
    }
    remap_luma(img, pixels, map);
}

// 3x3 filters with replicated borders. kind 0: Gaussian [1 2 1]^2/16, 1: median, 2: unsharp.
void filter3(uint8_t* img, int h, int w, int kind) {
    std::vector<uint8_t> src(img, img + static_cast<size_t>(h) * w * 3);
    auto at = [&](int y, int x, int c) {
        y = std::clamp(y, 0, h - 1);
        x = std::clamp(x, 0, w - 1);
        return src[(static_cast<size_t>(y) * w + x) * 3 + c];
    };
    static constexpr int g[3][3] = {{1, 2, 1}, {2, 4, 2}, {1, 2, 1}};
    std::array<uint8_t, 9> win{};
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c) {
                uint8_t& out = img[(static_cast<size_t>(y) * w + x) * 3 + c];
                if (kind == 1) {
                    int n = 0;
                    for (int dy = -1; dy <= 1; ++dy)
                        for (int dx = -1; dx <= 1; ++dx) win[n++] = at(y + dy, x + dx, c);
                    std::nth_element(win.begin(), win.begin() + 4, win.end());
                    out = win[4];
                } else {
                    int s = 0;
                    for (int dy = -1; dy <= 1; ++dy)
                        for (int dx = -1; dx <= 1; ++dx) s += g[dy + 1][dx + 1] * at(y + dy, x + dx, c);
                    const double blur = s / 16.0;
                    out = kind == 0 ? clamp_u8(blur) : clamp_u8(2.0 * at(y, x, c) - blur);
                }
            }
}

std::vector<std::string> split_spec(const std::string& spec) {
    std::vector<std::string> out;
    std::stringstream ss(spec);
    std::string tok;
    while (std::getline(ss, tok, ','))
        if (!tok.empty()) out.push_back(tok);
    return out;
}

}  // namespace

torch::Tensor enhance_chips(const torch::Tensor& chips, const std::string& spec) {
    check_chips(chips, "enhance_chips");
    const auto steps = split_spec(spec);
    for (const auto& s : steps)
        if (s != "stretch" && s != "equalize" && s != "smooth" && s != "median" && s != "sharpen")
            throw std::invalid_argument("enhance_chips: unknown step '" + s + "' in '" + spec +
                                        "' (stretch, equalize, smooth, median, sharpen)");
    auto out = chips.contiguous().clone();
    const int64_t n = out.size(0);
    const int h = static_cast<int>(out.size(1)), w = static_cast<int>(out.size(2));
    uint8_t* base = out.data_ptr<uint8_t>();
    at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
            uint8_t* img = base + i * h * w * 3;
            for (const auto& s : steps) {
                if (s == "stretch") stretch(img, int64_t{h} * w);
                else if (s == "equalize") equalize(img, int64_t{h} * w);
                else filter3(img, h, w, s == "smooth" ? 0 : s == "median" ? 1 : 2);
            }
        }
    });
    return out;
}

uint64_t mix_seed(std::initializer_list<uint64_t> values) {
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (uint64_t v : values) {
        x ^= v + 0x9E3779B97F4A7C15ull + (x << 6) + (x >> 2);
        uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        x = z ^ (z >> 31);
    }
    return x;
}

void augment_chip(const uint8_t* src, uint8_t* dst, int h, int w, const AugmentOptions& o, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u01(0.0, 1.0);
    const bool flip = o.flip && u01(rng) < 0.5;
    std::uniform_int_distribution<int> shift(-o.max_shift, o.max_shift);
    const int dx = o.max_shift > 0 ? shift(rng) : 0, dy = o.max_shift > 0 ? shift(rng) : 0;
    const double bright = 1.0 + o.brightness * (2.0 * u01(rng) - 1.0);
    const double contrast = 1.0 + o.contrast * (2.0 * u01(rng) - 1.0);
    // Geometry: dst(y, x) = src(y + dy, flip ? w-1-(x+dx) : x+dx), zero outside.
    double sum = 0.0;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const int sy = y + dy, sx0 = x + dx;
            const int sx = flip ? w - 1 - sx0 : sx0;
            uint8_t* d = dst + (static_cast<size_t>(y) * w + x) * 3;
            if (sy < 0 || sy >= h || sx0 < 0 || sx0 >= w) {
                d[0] = d[1] = d[2] = 0;
                continue;
            }
            const uint8_t* s = src + (static_cast<size_t>(sy) * w + sx) * 3;
            d[0] = s[0], d[1] = s[1], d[2] = s[2];
            sum += d[0] + d[1] + d[2];
        }
    const double mean = sum / (3.0 * h * w);
    for (size_t i = 0; i < static_cast<size_t>(h) * w * 3; ++i)
        dst[i] = clamp_u8(((dst[i] - mean) * contrast + mean) * bright);
    if (o.erase_probability > 0 && u01(rng) < o.erase_probability) {
        // MMT's RandomErasing: area fraction and aspect ratio, up to 100 tries to fit.
        for (int attempt = 0; attempt < 100; ++attempt) {
            const double area = (o.erase_min_area + (o.erase_max_area - o.erase_min_area) * u01(rng)) * h * w;
            const double aspect = std::exp(std::log(0.3) + (std::log(1 / 0.3) - std::log(0.3)) * u01(rng));
            const int eh = static_cast<int>(std::lround(std::sqrt(area * aspect)));
            const int ew = static_cast<int>(std::lround(std::sqrt(area / aspect)));
            if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
            const int y0 = static_cast<int>(u01(rng) * (h - eh)), x0 = static_cast<int>(u01(rng) * (w - ew));
            static constexpr uint8_t fill[3] = {123, 117, 104};  // the network's mean colour
            for (int y = y0; y < y0 + eh; ++y)
                for (int x = x0; x < x0 + ew; ++x)
                    std::memcpy(dst + (static_cast<size_t>(y) * w + x) * 3, fill, 3);
            break;
        }
    }
}

PkSampler::PkSampler(const std::vector<int64_t>& labels, int p, int k, uint64_t seed, const SampleLinks* links)
    : p_(p), k_(k), seed_(seed) {
    if (p < 1 || k < 1) throw std::invalid_argument("PkSampler: P and K must be >= 1");
    int64_t max_label = -1;
    for (auto l : labels) max_label = std::max(max_label, l);
    members_.resize(static_cast<size_t>(max_label + 1));
    for (size_t i = 0; i < labels.size(); ++i)
        if (labels[i] >= 0) members_[labels[i]].push_back(static_cast<int64_t>(i));
    std::vector<int64_t> id_of(members_.size(), -1);  // label -> pseudo-identity index after the erase
    for (size_t l = 0, id = 0; l < members_.size(); ++l)
        if (!members_[l].empty()) id_of[l] = static_cast<int64_t>(id++);
    std::erase_if(members_, [](const auto& m) { return m.empty(); });
    if (members_.empty()) throw std::invalid_argument("PkSampler: no labelled sample (all noise)");
    if (!links) return;
    if (links->track.size() != labels.size()) throw std::invalid_argument("PkSampler: one track per sample needed");
    bool any = std::any_of(links->track.begin(), links->track.end(), [](int64_t t) { return t >= 0; });
    std::vector<std::vector<Partner>> partners(members_.size());
    for (const auto& [a, b] : links->cannot) {
        if (a < 0 || b < 0 || a >= static_cast<int64_t>(labels.size()) || b >= static_cast<int64_t>(labels.size()))
            throw std::invalid_argument("PkSampler: a cannot-link out of range");
        if (labels[a] < 0 || labels[b] < 0 || labels[a] == labels[b]) continue;
        const int64_t x = id_of[labels[a]], y = id_of[labels[b]];
        partners[x].push_back({y, a, b});
        partners[y].push_back({x, b, a});
        any = true;
    }
    if (!any) return;
    partners_ = std::move(partners);
    track_ = links->track;
}

std::vector<int64_t> PkSampler::linked_batch(std::mt19937_64& rng) const {
    const auto ids_n = static_cast<int64_t>(members_.size());
    std::vector<int64_t> chosen;
    std::vector<std::vector<int64_t>> forced(static_cast<size_t>(ids_n));
    std::vector<char> used(static_cast<size_t>(ids_n), 0);
    std::vector<int64_t> unused(static_cast<size_t>(ids_n));
    std::iota(unused.begin(), unused.end(), 0);
    auto take = [&](int64_t id) {
        chosen.push_back(id);
        if (!used[id]) unused.erase(std::find(unused.begin(), unused.end(), id));
        used[id] = 1;
    };
    while (static_cast<int>(chosen.size()) < p_) {
        const int64_t id = unused.empty() ? std::uniform_int_distribution<int64_t>(0, ids_n - 1)(rng)
                                          : unused[std::uniform_int_distribution<size_t>(0, unused.size() - 1)(rng)];
        take(id);
        if (static_cast<int>(chosen.size()) >= p_) break;
        std::vector<const Partner*> open;
        for (const auto& q : partners_[id])
            if (!used[q.id]) open.push_back(&q);
        if (open.empty()) continue;
        const auto* q = open[std::uniform_int_distribution<size_t>(0, open.size() - 1)(rng)];
        forced[id].push_back(q->mine);
        forced[q->id].push_back(q->theirs);
        take(q->id);
    }
    std::vector<int64_t> out;
    out.reserve(static_cast<size_t>(p_) * k_);
    for (auto id : chosen) {
        const auto& m = members_[id];
        std::vector<int64_t> picked;
        for (int64_t f : forced[id])
            if (static_cast<int>(picked.size()) < k_ && std::find(picked.begin(), picked.end(), f) == picked.end())
                picked.push_back(f);
        forced[id].clear();  // a pseudo-identity drawn twice (P > identities) gets them once
        std::vector<int64_t> left;
        for (int64_t x : m)
            if (std::find(picked.begin(), picked.end(), x) == picked.end()) left.push_back(x);
        while (static_cast<int>(picked.size()) < k_) {
            // Every second image from the previous one's track (a positive across views).
            const int64_t prev = picked.empty() ? -1 : picked.back();
            std::vector<size_t> mates;
            if (picked.size() % 2 == 1 && track_[prev] >= 0)
                for (size_t t = 0; t < left.size(); ++t)
                    if (track_[left[t]] == track_[prev]) mates.push_back(t);
            if (left.empty()) {  // fewer members than K: with replacement
                picked.push_back(m[std::uniform_int_distribution<size_t>(0, m.size() - 1)(rng)]);
                continue;
            }
            const size_t at = mates.empty() ? std::uniform_int_distribution<size_t>(0, left.size() - 1)(rng)
                                            : mates[std::uniform_int_distribution<size_t>(0, mates.size() - 1)(rng)];
            picked.push_back(left[at]);
            left.erase(left.begin() + static_cast<std::ptrdiff_t>(at));
        }
        out.insert(out.end(), picked.begin(), picked.end());
    }
    return out;
}

std::vector<int64_t> PkSampler::batch(int64_t cycle, int64_t iter) const {
    std::mt19937_64 rng(mix_seed({seed_, 0x5A3D1Eull, static_cast<uint64_t>(cycle), static_cast<uint64_t>(iter)}));
    if (!track_.empty()) return linked_batch(rng);
    const auto ids_n = static_cast<int64_t>(members_.size());
    std::vector<int64_t> ids(static_cast<size_t>(ids_n));
    std::iota(ids.begin(), ids.end(), 0);
    std::vector<int64_t> chosen;
    if (ids_n >= p_) {
        for (int i = 0; i < p_; ++i) {  // partial Fisher-Yates
            std::uniform_int_distribution<int64_t> d(i, ids_n - 1);
            std::swap(ids[i], ids[d(rng)]);
            chosen.push_back(ids[i]);
        }
    } else {
        std::uniform_int_distribution<int64_t> d(0, ids_n - 1);
        for (int i = 0; i < p_; ++i) chosen.push_back(i < ids_n ? ids[i] : d(rng));
    }
    std::vector<int64_t> out;
    out.reserve(static_cast<size_t>(p_) * k_);
    for (auto id : chosen) {
        auto m = members_[id];
        if (static_cast<int64_t>(m.size()) >= k_) {
            for (int i = 0; i < k_; ++i) {
                std::uniform_int_distribution<size_t> d(i, m.size() - 1);
                std::swap(m[i], m[d(rng)]);
                out.push_back(m[i]);
            }
        } else {
            std::uniform_int_distribution<size_t> d(0, m.size() - 1);
            for (int i = 0; i < k_; ++i) out.push_back(m[d(rng)]);
        }
    }
    return out;
}

namespace {
std::shared_ptr<const ChipSource> chips_of(const torch::Tensor& set, const char* who) {
    if (!set.defined()) return nullptr;
    check_chips(set, who);
    return std::make_shared<TensorChips>(set.contiguous());
}
}  // namespace

BatchPrefetcher::BatchPrefetcher(torch::Tensor set1, torch::Tensor set2, std::vector<int64_t> labels,
                                 const PkSampler& sampler, AugmentOptions augment, uint64_t seed, int64_t cycle,
                                 int64_t first_iter, int64_t last_iter, int workers, int capacity)
    : BatchPrefetcher(chips_of(set1, "BatchPrefetcher set1"), chips_of(set2, "BatchPrefetcher set2"),
                      std::move(labels), sampler, augment, seed, cycle, first_iter, last_iter, workers, capacity) {}

BatchPrefetcher::BatchPrefetcher(std::shared_ptr<const ChipSource> set1, std::shared_ptr<const ChipSource> set2,
                                 std::vector<int64_t> labels, const PkSampler& sampler, AugmentOptions augment,
                                 uint64_t seed, int64_t cycle, int64_t first_iter, int64_t last_iter, int workers,
                                 int capacity)
    : set1_(std::move(set1)), set2_(std::move(set2)), labels_(std::move(labels)), sampler_(sampler),
      augment_(augment), seed_(seed), cycle_(cycle), next_build_(first_iter), next_take_(first_iter),
      last_(last_iter), capacity_(std::max(1, capacity)) {
    if (!set1_) throw std::invalid_argument("BatchPrefetcher: set1 is required");
    if (set2_ && (set2_->size() != set1_->size() || set2_->height() != set1_->height() ||
                  set2_->width() != set1_->width()))
        throw std::invalid_argument("BatchPrefetcher: set1 and set2 differ in shape");
    if (static_cast<int64_t>(labels_.size()) != set1_->size())
        throw std::invalid_argument("BatchPrefetcher: one label per chip needed");
    for (int i = 0; i < std::max(1, workers); ++i) threads_.emplace_back([this] { work(); });
}

BatchPrefetcher::~BatchPrefetcher() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

TrainingBatch BatchPrefetcher::build(int64_t iter) const {
    TrainingBatch b;
    b.iter = iter;
    const auto idx = sampler_.batch(cycle_, iter);
    const int64_t n = static_cast<int64_t>(idx.size());
    const int h = set1_->height(), w = set1_->width();
    const int64_t stride = int64_t{h} * w * 3;
    b.indices = torch::tensor(idx, torch::kInt64);
    std::vector<int64_t> t(idx.size());
    for (size_t i = 0; i < idx.size(); ++i) t[i] = labels_[idx[i]];
    b.targets = torch::tensor(t, torch::kInt64);
    // The normalisation of chips_to_input(), written out here so that worker threads never
    // enter torch's intra-op thread pool (which the trainer's thread is using).
    static constexpr float kMean[3] = {122.782f, 117.001f, 104.298f};
    auto make = [&](const ChipSource& set, uint64_t stream) {
        std::vector<uint8_t> raw(static_cast<size_t>(stride)), chip(static_cast<size_t>(stride));
        auto out = torch::empty({n, 3, h, w}, torch::kFloat32);
        float* dst = out.data_ptr<float>();
        for (int64_t i = 0; i < n; ++i) {
            set.read(idx[i], raw.data());
            augment_chip(raw.data(), chip.data(), h, w, augment_,
                         mix_seed({seed_, stream, static_cast<uint64_t>(cycle_), static_cast<uint64_t>(iter),
                                   static_cast<uint64_t>(i)}));
            float* plane = dst + i * stride;
            for (int64_t p = 0; p < int64_t{h} * w; ++p)
                for (int c = 0; c < 3; ++c) plane[c * h * w + p] = (chip[p * 3 + c] - kMean[c]) / 256.0f;
        }
        return out;
    };
    b.input1 = make(*set1_, 1);
    if (set2_) b.input2 = make(*set2_, 2);
    return b;
}

void BatchPrefetcher::work() {
    for (;;) {
        int64_t iter;
        {
            std::unique_lock lock(mutex_);
            cv_.wait(lock, [&] { return stop_ || (next_build_ < last_ && next_build_ - next_take_ < capacity_); });
            if (stop_ || next_build_ >= last_) return;
            iter = next_build_++;
        }
        TrainingBatch b;
        try {
            b = build(iter);
        } catch (...) {
            std::lock_guard lock(mutex_);
            error_ = std::current_exception();
            cv_.notify_all();
            return;
        }
        {
            std::lock_guard lock(mutex_);
            ready_.emplace(iter, std::move(b));
        }
        cv_.notify_all();
    }
}

TrainingBatch BatchPrefetcher::next() {
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex_);
    if (next_take_ >= last_) throw std::out_of_range("BatchPrefetcher: no iteration left");
    cv_.wait(lock, [&] { return error_ || ready_.count(next_take_); });
    if (error_) std::rethrow_exception(error_);
    auto node = ready_.extract(next_take_++);
    lock.unlock();
    cv_.notify_all();
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::move(node.mapped());
}

void save_chips_file(const torch::Tensor& chips, const std::filesystem::path& path) {
    check_chips(chips, "save_chips_file");
    const auto c = chips.contiguous();
    std::ofstream out(path, std::ios::binary);
    if (!out) throw std::runtime_error("cannot write chips file " + path.string());
    out.write("FACHIPS1", 8);
    for (int d = 0; d < 4; ++d) {
        const int64_t v = c.size(d);
        out.write(reinterpret_cast<const char*>(&v), 8);
    }
    out.write(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<std::streamsize>(c.numel()));
    if (!out) throw std::runtime_error("short write to chips file " + path.string());
}

torch::Tensor load_chips_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read chips file " + path.string());
    char magic[8] = {};
    in.read(magic, 8);
    if (!in || std::memcmp(magic, "FACHIPS1", 8) != 0)
        throw std::runtime_error("chips file " + path.string() + ": bad magic (not a FACHIPS1 file)");
    int64_t dims[4];
    in.read(reinterpret_cast<char*>(dims), sizeof dims);
    if (!in || dims[0] < 0 || dims[1] < 1 || dims[2] < 1 || dims[3] != 3 || dims[1] > 4096 || dims[2] > 4096)
        throw std::runtime_error("chips file " + path.string() + ": bad header");
    auto t = torch::empty({dims[0], dims[1], dims[2], dims[3]}, torch::kUInt8);
    in.read(reinterpret_cast<char*>(t.data_ptr<uint8_t>()), static_cast<std::streamsize>(t.numel()));
    if (in.gcount() != static_cast<std::streamsize>(t.numel()))
        throw std::runtime_error("chips file " + path.string() + ": truncated");
    return t;
}

}  // namespace faceadapt::learner
