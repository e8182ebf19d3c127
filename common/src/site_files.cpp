// A training snapshot's files and the operator's corrections on disk; see site_files.hpp.
#include "faceadapt/common/site_files.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "faceadapt/common/durable_file.hpp"

namespace faceadapt::common {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxLine = 4096;
constexpr const char* kIndexHeader = "id,camera,unix_ms,track,score,file";
constexpr const char* kConstraintsHeader = "kind,a,b";
constexpr const char* kClusteringHeader = "crop,cluster";

std::vector<std::string> split_commas(const std::string& line) {
    std::vector<std::string> out;
    std::string f;
    std::stringstream ss(line);
    while (std::getline(ss, f, ',')) out.push_back(f);
    if (!line.empty() && line.back() == ',') out.emplace_back();
    return out;
}

bool parse_int(const std::string& s, int64_t& v) {
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

bool valid_text(const std::string& s, bool spaces) {
    if (s.empty() || s.size() > 64) return false;
    return std::all_of(s.begin(), s.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
               c == '-' || (spaces && c == ' ');
    });
}

[[noreturn]] void bad(const fs::path& file, int64_t line, const std::string& what) {
    throw std::invalid_argument(file.string() + ": line " + std::to_string(line) + " " + what);
}

// Reads one line into `line` (without its "\n" or "\r\n"); false at the end of the file. A line
// longer than kMaxLine is refused as soon as it passes the bound, without reading the rest of
// it: one 1 GB line costs 4 KB, not 1 GB (std::getline would hold all of it first).
bool read_line(std::istream& in, std::string& line, const fs::path& file, int64_t n) {
    line.clear();
    char c;
    bool any = false;
    while (in.get(c)) {
        any = true;
        if (c == '\n') break;
        if (line.size() > kMaxLine) bad(file, n, "is longer than 4096 bytes");
        line.push_back(c);
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() > kMaxLine) bad(file, n, "is longer than 4096 bytes");
    return any;
}

// Reads `file` line by line after checking its header; calls row(fields, line number).
template <typename Row>
void read_csv(const fs::path& file, const char* header, Row row) {
    std::ifstream in(file);
    if (!in) throw std::invalid_argument(file.string() + ": cannot be read");
    std::string line;
    if (!read_line(in, line, file, 1) || line != header)
        throw std::invalid_argument(file.string() + ": header is not '" + header + "'");
    int64_t n = 1;
    while (read_line(in, line, file, ++n)) {
        if (line.empty()) continue;
        row(split_commas(line), n);
    }
}

// A file name a row may carry: no control characters (they would reach logs and errors raw).
bool valid_file_name(const std::string& s) {
    return !s.empty() && std::none_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

ConstraintRef parse_ref(const fs::path& file, int64_t line, const std::string& s) {
    ConstraintRef r;
    if (s.rfind("name:", 0) == 0) {
        r.name = s.substr(5);
        if (!valid_text(r.name, true)) bad(file, line, "has a bad name (1-64 of A-Z a-z 0-9 space _ . -)");
    } else if (!parse_int(s, r.crop) || r.crop < 0) {
        bad(file, line, "has a reference that is neither a crop id nor name:<name>");
    }
    return r;
}

std::string ref_text(const ConstraintRef& r) { return r.crop >= 0 ? std::to_string(r.crop) : "name:" + r.name; }

template <typename Write>
void write_file(const fs::path& file, Write write) {
    std::ofstream out(file, std::ios::trunc);
    if (!out) throw std::runtime_error(file.string() + ": cannot write");
    write(out);
    out.flush();
    if (!out) throw std::runtime_error(file.string() + ": write failed");
}

}  // namespace

std::vector<SnapshotRow> read_snapshot_index(const fs::path& index_csv) {
    std::vector<SnapshotRow> rows;
    read_csv(index_csv, kIndexHeader, [&](const std::vector<std::string>& f, int64_t line) {
        if (f.size() != 6) bad(index_csv, line, "does not have 6 fields");
        SnapshotRow r;
        if (!parse_int(f[0], r.id) || !parse_int(f[2], r.unix_ms) || !parse_int(f[3], r.track))
            bad(index_csv, line, "has a bad number");
        try {
            size_t used = 0;
            r.score = std::stod(f[4], &used);
            if (used != f[4].size()) bad(index_csv, line, "has a bad score");
        } catch (const std::logic_error&) {
            bad(index_csv, line, "has a bad score");
        }
        if (!valid_text(f[1], false)) bad(index_csv, line, "has a bad camera name (1-64 of A-Z a-z 0-9 _ . -)");
        if (!valid_file_name(f[5])) bad(index_csv, line, "has no file name or a control character in it");
        r.camera = f[1];
        r.file = f[5];
        rows.push_back(std::move(r));
    });
    return rows;
}

void write_snapshot_index(const fs::path& index_csv, const std::vector<SnapshotRow>& rows) {
    write_file(index_csv, [&](std::ofstream& out) {
        out << kIndexHeader << '\n';
        char score[32];
        for (const auto& r : rows) {
            if (!valid_text(r.camera, false) || r.file.string().find_first_of(",\n\r") != std::string::npos)
                throw std::runtime_error(index_csv.string() + ": a row's camera or file name cannot be written in CSV");
            std::snprintf(score, sizeof score, "%.6f", r.score);
            out << r.id << ',' << r.camera << ',' << r.unix_ms << ',' << r.track << ',' << score << ','
                << r.file.string() << '\n';
        }
    });
}

OperatorConstraints read_constraints(const fs::path& constraints_csv) {
    OperatorConstraints c;
    if (!fs::exists(constraints_csv)) return c;
    int64_t rows = 0;
    read_csv(constraints_csv, kConstraintsHeader, [&](const std::vector<std::string>& f, int64_t line) {
        if (++rows > kMaxConstraintRows) bad(constraints_csv, line, "is past the limit of 1000000 rows");
        if (f.size() != 3) bad(constraints_csv, line, "does not have 3 fields");
        if (f[0] == "must") {
            int64_t crop = -1;
            if (!parse_int(f[1], crop) || crop < 0) bad(constraints_csv, line, "has a bad crop id");
            if (!valid_text(f[2], true)) bad(constraints_csv, line, "has a bad name (1-64 of A-Z a-z 0-9 space _ . -)");
            c.must.emplace_back(crop, f[2]);
        } else if (f[0] == "same") {
            int64_t a = -1, b = -1;
            if (!parse_int(f[1], a) || a < 0 || !parse_int(f[2], b) || b < 0) bad(constraints_csv, line, "has a bad crop id");
            c.same.emplace_back(a, b);
        } else if (f[0] == "cannot") {
            c.cannot.emplace_back(parse_ref(constraints_csv, line, f[1]), parse_ref(constraints_csv, line, f[2]));
        } else {
            bad(constraints_csv, line, "has a kind that is not must, cannot or same");
        }
    });
    return c;
}

void write_constraints(const fs::path& constraints_csv, const OperatorConstraints& c) {
    if (c.rows() > kMaxConstraintRows)
        throw std::runtime_error(constraints_csv.string() + ": more than 1000000 rows cannot be written");
    std::string out = std::string(kConstraintsHeader) + "\n";
    for (const auto& [crop, name] : c.must) {
        if (!valid_text(name, true)) throw std::runtime_error(constraints_csv.string() + ": a name cannot be written");
        out += "must," + std::to_string(crop) + ',' + name + '\n';
    }
    for (const auto& [a, b] : c.cannot) {
        for (const auto* r : {&a, &b})
            if (r->crop < 0 && !valid_text(r->name, true))
                throw std::runtime_error(constraints_csv.string() + ": a name cannot be written");
        out += "cannot," + ref_text(a) + ',' + ref_text(b) + '\n';
    }
    for (const auto& [a, b] : c.same) out += "same," + std::to_string(a) + ',' + std::to_string(b) + '\n';
    write_file_atomic(constraints_csv, out);
}

std::vector<ClusterAssignment> read_clustering(const fs::path& clustering_csv) {
    std::vector<ClusterAssignment> rows;
    read_csv(clustering_csv, kClusteringHeader, [&](const std::vector<std::string>& f, int64_t line) {
        if (static_cast<int64_t>(rows.size()) >= kMaxClusteringRows)
            bad(clustering_csv, line, "is past the limit of 10000000 rows");
        if (f.size() != 2) bad(clustering_csv, line, "does not have 2 fields");
        ClusterAssignment a;
        if (!parse_int(f[0], a.crop) || a.crop < 0) bad(clustering_csv, line, "has a bad crop id");
        if (!parse_int(f[1], a.cluster) || a.cluster < -1) bad(clustering_csv, line, "has a bad cluster (>= 0, or -1: noise)");
        rows.push_back(a);
    });
    return rows;
}

void write_clustering(const fs::path& clustering_csv, const std::vector<ClusterAssignment>& rows) {
    if (static_cast<int64_t>(rows.size()) > kMaxClusteringRows)
        throw std::runtime_error(clustering_csv.string() + ": more than 10000000 rows cannot be written");
    std::string out = std::string(kClusteringHeader) + "\n";
    out.reserve(out.size() + rows.size() * 16);
    for (const auto& r : rows) {
        if (r.crop < 0 || r.cluster < -1) throw std::runtime_error(clustering_csv.string() + ": a row cannot be written");
        out += std::to_string(r.crop) + ',' + std::to_string(r.cluster) + '\n';
    }
    write_file_atomic(clustering_csv, out);
}

bool valid_person_name(const std::string& name) { return valid_text(name, true); }

}  // namespace faceadapt::common
