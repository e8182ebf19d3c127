// Bounded image reading; see image_file.hpp.
#include "faceadapt/ingest/image_file.hpp"

#include <cctype>
#include <fstream>
#include <vector>

#include <opencv2/imgcodecs.hpp>

namespace faceadapt::ingest {
namespace {

uint32_t be16(std::string_view b, size_t i) { return (uint8_t(b[i]) << 8) | uint8_t(b[i + 1]); }
uint32_t le16(std::string_view b, size_t i) { return uint8_t(b[i]) | (uint8_t(b[i + 1]) << 8); }
uint32_t be32(std::string_view b, size_t i) { return (be16(b, i) << 16) | be16(b, i + 2); }
uint32_t le32(std::string_view b, size_t i) { return le16(b, i) | (le16(b, i + 2) << 16); }
bool starts(std::string_view b, std::string_view magic) { return b.substr(0, magic.size()) == magic; }

std::optional<ImageSize> png_size(std::string_view b) {
    // Signature, then the IHDR chunk first: length, "IHDR", width, height (big-endian).
    if (b.size() < 24 || b.substr(12, 4) != "IHDR") return std::nullopt;
    return ImageSize{be32(b, 16), be32(b, 20)};
}

std::optional<ImageSize> jpeg_size(std::string_view b) {
    size_t i = 2;
    while (i + 4 <= b.size()) {
        if (uint8_t(b[i]) != 0xFF) return std::nullopt;
        const uint8_t marker = uint8_t(b[i + 1]);
        if (marker == 0xFF) {  // fill byte
            ++i;
            continue;
        }
        if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
            i += 2;
            continue;
        }
        if (marker == 0xD9 || marker == 0xDA) return std::nullopt;  // end / scan before any frame header
        const uint32_t length = be16(b, i + 2);
        if (length < 2) return std::nullopt;
        const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
        if (sof) {
            if (i + 9 > b.size()) return std::nullopt;
            return ImageSize{be16(b, i + 7), be16(b, i + 5)};  // precision, height, width
        }
        i += 2 + length;
    }
    return std::nullopt;
}

std::optional<ImageSize> bmp_size(std::string_view b) {
    if (b.size() < 26) return std::nullopt;
    const uint32_t header = le32(b, 14);
    if (header == 12) return ImageSize{le16(b, 18), le16(b, 20)};  // BITMAPCOREHEADER
    const auto w = static_cast<int32_t>(le32(b, 18)), h = static_cast<int32_t>(le32(b, 22));
    return ImageSize{w < 0 ? -int64_t{w} : w, h < 0 ? -int64_t{h} : h};
}

std::optional<ImageSize> pnm_size(std::string_view b) {
    // "P1".."P6", then width and height as decimal text, separated by whitespace or comments.
    size_t i = 2;
    int64_t v[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
        for (;;) {
            while (i < b.size() && std::isspace(static_cast<unsigned char>(b[i]))) ++i;
            if (i < b.size() && b[i] == '#') {
                while (i < b.size() && b[i] != '\n') ++i;
                continue;
            }
            break;
        }
        size_t digits = 0;
        while (i < b.size() && std::isdigit(static_cast<unsigned char>(b[i])) && digits < 10)
            v[k] = v[k] * 10 + (b[i++] - '0'), ++digits;
        if (digits == 0 || digits == 10) return std::nullopt;
    }
    return ImageSize{v[0], v[1]};
}

std::optional<ImageSize> tiff_size(std::string_view b) {
    const bool le = b[0] == 'I';
    auto u16 = [&](size_t i) { return le ? le16(b, i) : be16(b, i); };
    auto u32 = [&](size_t i) { return le ? le32(b, i) : be32(b, i); };
    if (b.size() < 8) return std::nullopt;
    const size_t ifd = u32(4);
    if (ifd + 2 > b.size()) return std::nullopt;
    const size_t entries = u16(ifd);
    int64_t width = -1, height = -1;
    for (size_t e = 0; e < entries; ++e) {
        const size_t at = ifd + 2 + 12 * e;
        if (at + 12 > b.size()) return std::nullopt;
        const uint32_t tag = u16(at), type = u16(at + 2);
        const int64_t value = type == 3 ? u16(at + 8) : type == 4 ? u32(at + 8) : -1;
        if (tag == 256) width = value;
        if (tag == 257) height = value;
    }
    if (width < 0 || height < 0) return std::nullopt;
    return ImageSize{width, height};
}

std::optional<ImageSize> webp_size(std::string_view b) {
    if (b.size() < 30) return std::nullopt;
    const auto chunk = b.substr(12, 4);
    auto u24 = [&](size_t i) { return le16(b, i) | (uint32_t(uint8_t(b[i + 2])) << 16); };
    if (chunk == "VP8X") return ImageSize{int64_t{u24(24)} + 1, int64_t{u24(27)} + 1};
    if (chunk == "VP8L") {
        if (uint8_t(b[20]) != 0x2F) return std::nullopt;
        const uint32_t bits = le32(b, 21);
        return ImageSize{int64_t{bits & 0x3FFF} + 1, int64_t{(bits >> 14) & 0x3FFF} + 1};
    }
    if (chunk == "VP8 ") {
        if (uint8_t(b[23]) != 0x9D || uint8_t(b[24]) != 0x01 || uint8_t(b[25]) != 0x2A) return std::nullopt;
        return ImageSize{le16(b, 26) & 0x3FFF, le16(b, 28) & 0x3FFF};
    }
    return std::nullopt;
}

}  // namespace

std::optional<ImageSize> read_image_size(std::string_view b) {
    if (starts(b, "\x89PNG\r\n\x1a\n")) return png_size(b);
    if (starts(b, "\xFF\xD8")) return jpeg_size(b);
    if (starts(b, "BM")) return bmp_size(b);
    if (b.size() >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6') return pnm_size(b);
    if (starts(b, std::string_view("II*\0", 4)) || starts(b, std::string_view("MM\0*", 4))) return tiff_size(b);
    if (starts(b, "RIFF") && b.size() >= 12 && b.substr(8, 4) == "WEBP") return webp_size(b);
    return std::nullopt;
}

BoundedImage read_image_bounded(const std::filesystem::path& file, const ImageLimits& limits) {
    BoundedImage out;
    auto refuse = [&](const std::string& why) {
        out.error = file.string() + ": " + why;
        return out;
    };
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(file, ec);
    if (ec) return refuse("not readable (" + ec.message() + ")");
    if (bytes > limits.max_file_bytes)
        return refuse("file of " + std::to_string(bytes) + " bytes, over the limit of " +
                      std::to_string(limits.max_file_bytes));
    std::vector<char> data(static_cast<size_t>(bytes));
    std::ifstream in(file, std::ios::binary);
    if (!in || !in.read(data.data(), static_cast<std::streamsize>(data.size())))
        return refuse("not readable");
    const auto size = read_image_size(std::string_view(data.data(), data.size()));
    if (!size) return refuse("not a readable image (unknown format or a damaged header)");
    if (size->width < 1 || size->height < 1) return refuse("header states an empty image");
    const std::string dims = std::to_string(size->width) + "x" + std::to_string(size->height);
    if (limits.exact_width > 0 && (size->width != limits.exact_width || size->height != limits.exact_height))
        return refuse("image is " + dims + ", not " + std::to_string(limits.exact_width) + "x" +
                      std::to_string(limits.exact_height));
    if (size->width > limits.max_side || size->height > limits.max_side ||
        size->width * size->height > limits.max_pixels)
        return refuse("header states " + dims + ", over the limit of " + std::to_string(limits.max_pixels) +
                      " pixels / " + std::to_string(limits.max_side) + " per side (not decoded)");
    try {
        out.bgr = cv::imdecode(cv::Mat(1, static_cast<int>(data.size()), CV_8UC1, data.data()), cv::IMREAD_COLOR);
    } catch (const cv::Exception&) {
        out.bgr.release();
    }
    if (out.bgr.empty()) return refuse("not a readable image (decoding failed)");
    const bool as_stated = out.bgr.cols == size->width && out.bgr.rows == size->height;
    const bool turned = out.bgr.cols == size->height && out.bgr.rows == size->width;  // EXIF orientation
    if (!as_stated && !turned)
        return refuse("decoded size differs from the header's " + dims);
    return out;
}

}  // namespace faceadapt::ingest
