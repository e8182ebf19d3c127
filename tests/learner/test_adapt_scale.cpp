// Training at scale: the bounded stratified sample, chip files streamed with pread, and the
// content fingerprint (no copy of the set).
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include <torch/torch.h>

#include "faceadapt/learner/chip_source.hpp"
#include "faceadapt/learner/training_data.hpp"
#include "faceadapt/learner/training_sample.hpp"
#include "test_support.hpp"

namespace fl = faceadapt::learner;
namespace fs = std::filesystem;

TEST(FairShares, WaterFillingKeepsSmallGroupsWholeAndSplitsTheRestEvenly) {
    EXPECT_EQ(fl::fair_shares({1, 5, 10}, 9), (std::vector<size_t>{1, 4, 4}));
    EXPECT_EQ(fl::fair_shares({1, 5, 10}, 100), (std::vector<size_t>{1, 5, 10}));
    EXPECT_EQ(fl::fair_shares({0, 3, 3}, 4), (std::vector<size_t>{0, 2, 2}));
    EXPECT_EQ(fl::fair_shares({}, 4), (std::vector<size_t>{}));
    // One-crop groups and a budget under their number: spread evenly, not the first ones.
    const auto s = fl::fair_shares(std::vector<size_t>(10, 1), 2);
    EXPECT_EQ(s, (std::vector<size_t>{1, 0, 0, 0, 0, 1, 0, 0, 0, 0}));
    // The sum is min(budget, total); shares differ by at most one among groups not full.
    const std::vector<size_t> sizes{7, 2, 30, 30, 11, 0, 5};
    for (size_t budget = 0; budget < 90; ++budget) {
        const auto sh = fl::fair_shares(sizes, budget);
        EXPECT_EQ(std::accumulate(sh.begin(), sh.end(), size_t{0}), std::min<size_t>(budget, 85));
        size_t lo = SIZE_MAX, hi = 0;
        for (size_t i = 0; i < sizes.size(); ++i) {
            EXPECT_LE(sh[i], sizes[i]);
            if (sh[i] < sizes[i]) lo = std::min(lo, sh[i]), hi = std::max(hi, sh[i]);
        }
        if (hi > 0) EXPECT_LE(hi - lo, 1u) << budget;
    }
}

TEST(StratifiedSample, SharesCamerasThenDaysThenTracks) {
    std::vector<fl::CropKey> keys;
    for (int i = 0; i < 900; ++i) keys.push_back({"busy", 20000, 1});            // one long track
    for (int t = 0; t < 10; ++t) keys.push_back({"quiet", 20000 + t % 2, t});  // ten one-crop tracks, 2 days
    const auto s = fl::stratified_sample(keys, 40);
    ASSERT_EQ(s.size(), 40u);
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    EXPECT_EQ(std::set<size_t>(s.begin(), s.end()).size(), s.size());
    std::map<std::string, int> per_camera;
    for (size_t i : s) ++per_camera[keys[i].camera];
    EXPECT_EQ(per_camera["quiet"], 10);  // all of the small camera
    EXPECT_EQ(per_camera["busy"], 30);   // the rest from the busy one...
    EXPECT_EQ(s[0], 0u);                 // ...evenly spaced along its track
    EXPECT_EQ(s[1], 30u);
    EXPECT_EQ(s[29], 870u);
    // Days share a camera's budget: 2 days of 5 tracks, budget 4 -> 2 per day.
    std::vector<fl::CropKey> quiet(keys.end() - 10, keys.end());
    std::map<int64_t, int> per_day;
    for (size_t i : fl::stratified_sample(quiet, 4)) ++per_day[quiet[i].day];
    EXPECT_EQ(per_day[20000], 2);
    EXPECT_EQ(per_day[20001], 2);
    // Tracks share a day's budget: 3 tracks of 10, 1 and 4 crops, budget 9 -> 4 + 1 + 4.
    std::vector<fl::CropKey> day;
    for (int i = 0; i < 10; ++i) day.push_back({"c", 1, 7});
    day.push_back({"c", 1, 8});
    for (int i = 0; i < 4; ++i) day.push_back({"c", 1, 9});
    std::map<int64_t, int> per_track;
    for (size_t i : fl::stratified_sample(day, 9)) ++per_track[day[i].track];
    EXPECT_EQ(per_track[7], 4);
    EXPECT_EQ(per_track[8], 1);
    EXPECT_EQ(per_track[9], 4);
    // Untracked crops (track -1) are spread evenly, and the bound off keeps everything.
    std::vector<fl::CropKey> loose(100);
    EXPECT_EQ(fl::stratified_sample(loose, 4), (std::vector<size_t>{0, 25, 50, 75}));
    EXPECT_EQ(fl::stratified_sample(loose, 0).size(), 100u);
    EXPECT_EQ(fl::stratified_sample(loose, 1000).size(), 100u);
    EXPECT_EQ(fl::stratified_sample(keys, 40), s);  // deterministic
}

TEST(ChipFile, StreamsWhatWasWrittenAndFingerprintsTheSameAsInMemory) {
    faceadapt::test::TempDir tmp;
    auto gen = at::detail::createCPUGenerator(11);
    const auto chips = at::randint(0, 256, {70, 150, 150, 3}, gen).to(torch::kUInt8);
    const fs::path file = tmp.path() / "set.chips";
    {
        fl::ChipFileWriter w(file, 150, 150);
        w.append(chips.data_ptr<uint8_t>(), 3);
        w.append(chips.data_ptr<uint8_t>() + 3 * 150 * 150 * 3, 67);
        w.finish();
        EXPECT_EQ(w.count(), 70);
    }
    const fl::ChipFile streamed(file);
    const fl::TensorChips held(chips);
    ASSERT_EQ(streamed.size(), 70);
    EXPECT_TRUE(torch::equal(streamed.read_range(0, 70), chips));
    EXPECT_TRUE(torch::equal(streamed.read_range(65, 70), chips.slice(0, 65, 70)));
    std::vector<uint8_t> one(150 * 150 * 3);
    streamed.read(41, one.data());
    EXPECT_TRUE(torch::equal(torch::from_blob(one.data(), {150, 150, 3}, torch::kUInt8), chips[41]));
    EXPECT_THROW(streamed.read(70, one.data()), std::out_of_range);
    // The old format reader reads it too (one format).
    EXPECT_TRUE(torch::equal(fl::load_chips_file(file), chips));
    // Same content, same fingerprint; one byte changed, another.
    const auto f = fl::content_fingerprint(held);
    EXPECT_EQ(fl::content_fingerprint(streamed), f);
    auto changed = chips.clone();
    changed[69][149][149][2] = static_cast<uint8_t>(changed[69][149][149][2].item<int>() ^ 1);
    EXPECT_NE(fl::content_fingerprint(fl::TensorChips(changed)), f);
    EXPECT_NE(fl::content_fingerprint(fl::TensorChips(chips.slice(0, 69))), f);
    // A truncated file is refused at open, naming it.
    fs::resize_file(file, fs::file_size(file) - 1);
    try {
        fl::ChipFile bad(file);
        ADD_FAILURE() << "a truncated chips file opened";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("set.chips"), std::string::npos) << e.what();
    }
}

TEST(ChipFile, FingerprintOfALargeSetCopiesNothing) {
    // 2,000 chips (135 MB) streamed: the fingerprint reads 64 chips at a time, so the peak
    // resident set grows by far less than the set (the old int64 copy was 8x its size).
    faceadapt::test::TempDir tmp;
    const fs::path file = tmp.path() / "big.chips";
    {
        fl::ChipFileWriter w(file, 150, 150);
        std::vector<uint8_t> chip(150 * 150 * 3);
        for (int i = 0; i < 2000; ++i) {
            std::fill(chip.begin(), chip.end(), static_cast<uint8_t>(i));
            w.append(chip.data(), 1);
        }
        w.finish();
    }
    // The first fingerprint in a process also starts libtorch's pools (tens of MB whatever the
    // set's size): a small set pays for that before the measured one.
    {
        const fs::path small = tmp.path() / "small.chips";
        fl::ChipFileWriter w(small, 150, 150);
        std::vector<uint8_t> chip(150 * 150 * 3, 7);
        for (int i = 0; i < 70; ++i) w.append(chip.data(), 1);
        w.finish();
        EXPECT_NE(fl::content_fingerprint(fl::ChipFile(small)), 0u);
    }
    rusage before{}, after{};
    getrusage(RUSAGE_SELF, &before);
    const fl::ChipFile set(file);
    const auto f = fl::content_fingerprint(set);
    getrusage(RUSAGE_SELF, &after);
    EXPECT_NE(f, 0u);
    // Half the set: any whole copy of it (135 MB) fails, the 64-chip window (4.3 MB) passes.
    EXPECT_LT((after.ru_maxrss - before.ru_maxrss) / 1024.0, 67.0) << "MB of peak RSS growth";
}
