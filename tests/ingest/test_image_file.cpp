// Bounded image reading on real files: every format's header read without decoding, a PNG
// decompression bomb refused before any pixel is decoded, damaged files refused, never thrown.
#include <sys/resource.h>

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "faceadapt/ingest/image_file.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
namespace fi = faceadapt::ingest;

namespace {

std::string slurp(const fs::path& f) {
    std::ifstream in(f, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}

cv::Mat pattern(int w, int h) {
    cv::Mat m(h, w, CV_8UC3);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) m.at<cv::Vec3b>(y, x) = cv::Vec3b(uchar(x * 7), uchar(y * 5), uchar(x + y));
    return m;
}

}  // namespace

TEST(ImageFile, HeaderSizeOfEveryFormatWithoutDecoding) {
    faceadapt::test::TempDir tmp;
    const auto img = pattern(37, 23);
    for (const std::string ext : {".png", ".jpg", ".bmp", ".ppm", ".pgm", ".tif", ".webp"}) {
        const fs::path f = tmp.path() / ("a" + ext);
        cv::Mat grey;
        cv::cvtColor(img, grey, cv::COLOR_BGR2GRAY);
        ASSERT_TRUE(cv::imwrite(f.string(), ext == ".pgm" ? grey : img)) << ext;
        const auto size = fi::read_image_size(slurp(f));
        ASSERT_TRUE(size) << ext;
        EXPECT_EQ(size->width, 37) << ext;
        EXPECT_EQ(size->height, 23) << ext;
        const auto read = fi::read_image_bounded(f, {});
        EXPECT_TRUE(read.error.empty()) << read.error;
        EXPECT_EQ(read.bgr.cols, 37) << ext;
        EXPECT_EQ(read.bgr.rows, 23) << ext;
    }
}

TEST(ImageFile, PngBombIsRefusedFromItsHeader) {
    faceadapt::test::TempDir tmp;
    const fs::path bomb = tmp.path() / "bomb.png";
    faceadapt::test::write_zero_png(bomb, 15000, 15000);
    EXPECT_LT(fs::file_size(bomb), 2u << 20);  // small on disk...
    const auto size = fi::read_image_size(slurp(bomb));
    ASSERT_TRUE(size);
    EXPECT_EQ(size->width, 15000);  // ...225 megapixels decoded
    EXPECT_EQ(size->height, 15000);
    const double before = peak_rss_mb();
    const auto read = fi::read_image_bounded(bomb, {});
    EXPECT_TRUE(read.bgr.empty());
    EXPECT_NE(read.error.find("15000x15000"), std::string::npos) << read.error;
    EXPECT_NE(read.error.find("bomb.png"), std::string::npos) << read.error;
    // Decoding it would take 675 MB as BGR: the peak resident set must not have moved by that.
    EXPECT_LT(peak_rss_mb() - before, 100.0);
    // A chip reader refuses anything but 150x150 the same way, before decoding.
    fi::ImageLimits chip;
    chip.exact_width = chip.exact_height = 150;
    EXPECT_NE(fi::read_image_bounded(bomb, chip).error.find("not 150x150"), std::string::npos);
}

TEST(ImageFile, DamagedFilesAreRefusedNotThrown) {
    faceadapt::test::TempDir tmp;
    const fs::path good = tmp.path() / "good.png";
    ASSERT_TRUE(cv::imwrite(good.string(), pattern(150, 150)));
    const std::string bytes = slurp(good);
    auto write = [&](const std::string& name, const std::string& content) {
        std::ofstream(tmp.path() / name, std::ios::binary) << content;
        return tmp.path() / name;
    };
    // A PNG cut after its header: the size reads, the decoding fails.
    const auto cut = fi::read_image_bounded(write("cut.png", bytes.substr(0, bytes.size() / 2)), {});
    EXPECT_TRUE(cut.bgr.empty());
    EXPECT_NE(cut.error.find("cut.png"), std::string::npos);
    // Cut inside the header, junk, an empty file, a missing file, a folder.
    for (const auto& f : {write("short.png", bytes.substr(0, 12)), write("junk.png", std::string(300, 'x')),
                          write("empty.jpg", ""), tmp.path() / "missing.png", tmp.path()}) {
        const auto r = fi::read_image_bounded(f, {});
        EXPECT_TRUE(r.bgr.empty()) << f;
        EXPECT_FALSE(r.error.empty()) << f;
    }
    // A file over the size limit is not even read.
    fi::ImageLimits small;
    small.max_file_bytes = 100;
    EXPECT_NE(fi::read_image_bounded(good, small).error.find("over the limit"), std::string::npos);
    EXPECT_TRUE(fi::read_image_bounded(good, {}).error.empty());
}
