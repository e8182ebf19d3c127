#include "test_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <stdexcept>
#include <string>
#include <vector>

namespace faceadapt::test {

void write_zero_png(const std::filesystem::path& file, int width, int height) {
    std::ofstream out(file, std::ios::binary);
    auto be32 = [](uint32_t v) {
        return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
    };
    auto chunk = [&](const std::string& type, const std::string& data) {
        const std::string body = type + data;
        const auto crc = static_cast<uint32_t>(
            crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
        out << be32(static_cast<uint32_t>(data.size())) << body << be32(crc);
    };
    out << "\x89PNG\r\n\x1a\n";
    // IHDR: width, height, bit depth 8, colour type 0 (grey), compression, filter, interlace 0.
    chunk("IHDR", be32(static_cast<uint32_t>(width)) + be32(static_cast<uint32_t>(height)) + std::string("\x08\0\0\0\0", 5));
    z_stream z{};
    if (deflateInit(&z, Z_BEST_COMPRESSION) != Z_OK) throw std::runtime_error("write_zero_png: deflateInit");
    std::vector<unsigned char> row(static_cast<size_t>(width) + 1, 0), buf(1 << 16);
    std::string idat;
    for (int y = 0; y <= height; ++y) {
        const bool last = y == height;
        z.next_in = last ? nullptr : row.data();
        z.avail_in = last ? 0 : static_cast<uInt>(row.size());
        do {
            z.next_out = buf.data();
            z.avail_out = static_cast<uInt>(buf.size());
            deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
            idat.append(reinterpret_cast<char*>(buf.data()), buf.size() - z.avail_out);
        } while (z.avail_out == 0);
    }
    deflateEnd(&z);
    chunk("IDAT", idat);
    chunk("IEND", "");
    if (!out) throw std::runtime_error("write_zero_png: cannot write " + file.string());
}

bool datasets_required() {
    const char* v = std::getenv("FACEADAPT_REQUIRE_DATASETS");
    return v && std::string(v) == "1";
}

std::filesystem::path shared_dir() { return FACEADAPT_SHARED_DIR; }
std::filesystem::path weights_dir() {
    if (const char* env = std::getenv("FACEADAPT_WEIGHTS_DIR")) return env;
    return FACEADAPT_WEIGHTS_DIR;
}
std::filesystem::path binary_dir() { return FACEADAPT_BINARY_DIR; }
std::string faceadapt_bin() { return (binary_dir() / "tools" / "faceadapt").string(); }
std::string door_bin() { return (binary_dir() / "tools" / "faceadapt-door").string(); }
std::filesystem::path source_dir() { return FACEADAPT_SOURCE_DIR; }

namespace {

// The lowest port the kernel hands out for bind(0) and for outgoing connections
// (/proc/sys/net/ipv4/ip_local_port_range); 32768 when it cannot be read.
int ephemeral_low() {
    std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
    int low = 0;
    if (in >> low && low > 1024) return low;
    return 32768;
}

// True when a TCP socket can bind 127.0.0.1:port now (no SO_REUSEADDR, so a port in TIME_WAIT
// counts as taken).
bool bindable(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

// Ports come from below the kernel's ephemeral range, so no bind(0) and no outgoing connection of
// a test running beside this one (the MQTT clients, the RTSP clients) can take the port between
// this call and the server's bind; and a port is never handed out twice in one process. (A port
// from bind(0), closed and returned, is exactly what the kernel hands to the next connect(): the
// browser test once got the broker's port again for the daemon's /metrics.)
int free_loopback_port() {
    static std::mutex mutex;
    static std::set<int> given;
    static std::mt19937 rng{std::random_device{}()};
    const std::lock_guard<std::mutex> lock(mutex);
    const int high = ephemeral_low() - 1;
    const int low = std::max(1025, std::min(20000, high - 1000));
    std::uniform_int_distribution<int> pick(low, high);
    for (int attempt = 0; attempt < 1000; ++attempt) {
        const int port = pick(rng);
        if (given.count(port) || !bindable(port)) continue;
        given.insert(port);
        return port;
    }
    throw std::runtime_error("no free port on 127.0.0.1 in [" + std::to_string(low) + ", " +
                             std::to_string(high) + "] after 1000 tries");
}

TempDir::TempDir() {
    std::random_device rd;
    for (int attempt = 0; attempt < 100; ++attempt) {
        auto candidate = std::filesystem::temp_directory_path() /
                         ("faceadapt-test-" + std::to_string(rd()));
        if (std::filesystem::create_directory(candidate)) {
            path_ = candidate;
            return;
        }
    }
    throw std::runtime_error("could not create a temp dir");
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

int run_command(const std::string& command, std::string* output) {
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (!pipe) return -1;
    std::array<char, 4096> buf{};
    std::string out;
    while (size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
    int status = ::pclose(pipe);
    if (output) *output = std::move(out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(poll);
    }
    return condition();
}

}  // namespace faceadapt::test
