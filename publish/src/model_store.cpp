// The door's model folder: installed.json, versions/<v>/, atomic installs, rollback, matching.
#include "model_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <system_error>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "faceadapt/common/text.hpp"
#include "model_check.hpp"
#include "util.hpp"

namespace faceadapt::publish {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path version_dir(const fs::path& dir, std::int64_t v) { return dir / "versions" / std::to_string(v); }

void write_installed_json(const fs::path& dir, std::int64_t version, std::int64_t previous, std::int64_t refuse_up_to) {
    json j = {{"version", version},
              {"previous_version", previous},
              {"refuse_up_to", refuse_up_to},
              {"installed_at", detail::utc_timestamp()}};
    detail::write_file_durable(dir / "installed.json", j.dump(2) + "\n");
}

[[noreturn]] void throw_errno(const fs::path& file, const std::string& what) {
    throw std::system_error(errno, std::generic_category(), file.string() + ": " + what);
}

// Appends to a file and fsyncs it on close(); RAII over a POSIX descriptor so that a failure
// carries its errno (a full disk must be told from bad data).
class PartWriter {
public:
    explicit PartWriter(fs::path file)
        : file_(std::move(file)), fd_(::open(file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) {
        if (!fd_.valid()) throw_errno(file_, "cannot create");
    }
    void write(std::string_view bytes) {
        while (!bytes.empty()) {
            auto n = ::write(fd_.get(), bytes.data(), bytes.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                throw_errno(file_, "cannot write");
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    void close() {
        if (::fsync(fd_.get()) != 0) throw_errno(file_, "fsync failed");
        if (::close(fd_.release()) != 0) throw_errno(file_, "cannot close");
    }
private:
    fs::path file_;
    common::UniqueFd fd_;
};

// Removes a temp folder unless commit() was called (every failure path cleans its staging).
class TempFolder {
public:
    explicit TempFolder(fs::path p) : path_(std::move(p)) {}
    ~TempFolder() {
        if (path_.empty()) return;
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempFolder(const TempFolder&) = delete;
    TempFolder& operator=(const TempFolder&) = delete;
    void commit() { path_.clear(); }
private:
    fs::path path_;
};

// The numbers among versions/'s folder names (whatever their contents).
std::int64_t highest_version_folder(const fs::path& dir) {
    std::int64_t best = 0;
    std::error_code ec;
    for (fs::directory_iterator it(dir / "versions", ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        try {
            std::size_t used = 0;
            auto v = std::stoll(name, &used);
            if (used == name.size() && v > best) best = v;
        } catch (const std::exception&) {
        }
    }
    return best;
}

}  // namespace

std::optional<InstalledModel> read_installed(const fs::path& dir) {
    auto file = dir / "installed.json";
    if (!fs::exists(file)) return std::nullopt;
    InstalledModel m;
    try {
        auto j = json::parse(detail::read_file(file));
        m.version = j.at("version").get<std::int64_t>();
        m.previous_version = j.value("previous_version", std::int64_t{0});
        m.refuse_up_to = j.value("refuse_up_to", std::int64_t{0});
        m.installed_at = j.value("installed_at", "");
    } catch (const json::exception& e) {
        throw std::runtime_error(file.string() + ": " + e.what());
    }
    auto vdir = version_dir(dir, m.version);
    m.model_file = vdir / "model.bin";
    m.gallery_file = vdir / "gallery.bin";
    m.manifest_file = vdir / "manifest.json";
    try {
        m.manifest = Manifest::parse(SignedManifest::parse_envelope(detail::read_file(m.manifest_file)).manifest_json);
    } catch (const std::exception& e) {
        throw std::runtime_error("installed version " + std::to_string(m.version) + " in " + dir.string() + ": " + e.what());
    }
    return m;
}

Gallery load_installed_gallery(const InstalledModel& installed) {
    auto check = [&](const fs::path& file, const char* part) {
        auto bytes = detail::read_file(file);
        if (detail::sha256_hex(bytes) != installed.manifest.part(part).sha256)
            throw PackageError(file.string() + ": sha256 does not match the installed manifest (damaged on disk)");
        return bytes;
    };
    check(installed.model_file, "model");
    return decode_gallery(check(installed.gallery_file, "gallery"), installed.manifest.match_threshold);
}

InstallFolderState inspect_install_folder(const fs::path& dir, bool deep, const PublicKey* key) {
    InstallFolderState st;
    if (!fs::exists(dir / "installed.json")) return st;
    std::int64_t named = 0;  // the version installed.json names, when it can be read
    try {
        auto j = json::parse(detail::read_file(dir / "installed.json"));
        named = j.at("version").get<std::int64_t>();
        st.previous_version = j.value("previous_version", std::int64_t{0});
        st.refuse_up_to = j.value("refuse_up_to", std::int64_t{0});
    } catch (const std::exception&) {
    }
    try {
        auto installed = read_installed(dir);
        if (deep && installed) {
            if (key) SignedManifest::parse_envelope(detail::read_file(installed->manifest_file)).verify(*key);
            (void)load_installed_gallery(*installed);
        }
        st.installed = std::move(installed);
        st.previous_version = st.installed ? st.installed->previous_version : 0;
    } catch (const std::exception& e) {
        st.damage = common::printable(e.what());
        st.version_floor = std::max(named, highest_version_folder(dir));
        if (st.previous_version == named || !fs::exists(version_dir(dir, st.previous_version) / "manifest.json"))
            st.previous_version = 0;
    }
    return st;
}

std::string acceptance_problem(const InstallFolderState& state, std::int64_t version, bool allow_rollback) {
    if (allow_rollback && !(state.installed && version == state.installed->version)) return "";
    if (!state.installed) {
        if (version < state.version_floor)
            return "version " + std::to_string(version) + " is older than version " + std::to_string(state.version_floor) +
                   " of the damaged install folder (no downgrade without an explicit operator rollback)";
        if (version <= state.refuse_up_to)
            return "version " + std::to_string(version) + " was rolled back by an operator (refused up to " +
                   std::to_string(state.refuse_up_to) + ")";
        return "";
    }
    const auto& installed = *state.installed;
    if (version == installed.version) return "version " + std::to_string(version) + " is already installed";
    if (version < installed.version)
        return "version " + std::to_string(version) + " is not newer than the installed version " +
               std::to_string(installed.version) + " (no downgrade without an explicit operator rollback)";
    if (version <= installed.refuse_up_to)
        return "version " + std::to_string(version) + " was rolled back by an operator (refused up to " +
               std::to_string(installed.refuse_up_to) + ")";
    return "";
}

std::string acceptance_problem(const fs::path& dir, std::int64_t version, bool allow_rollback) {
    return acceptance_problem(inspect_install_folder(dir), version, allow_rollback);
}


InstalledModel install_verified(const fs::path& dir, const std::string& envelope, const Manifest& m,
                                std::string_view site, const std::function<std::string(std::size_t)>& chunk) {
    m.check_installable(site);
    detail::ModelPartCheck model_check(m.architecture);
    auto versions = dir / "versions";
    fs::create_directories(versions);
    auto tmp = versions / (".tmp-" + std::to_string(m.model_version));
    fs::remove_all(tmp);
    TempFolder tmp_guard(tmp);
    fs::create_directories(tmp);

    // Stream the chunks into the part files; the payload and part hashes cover every byte.
    const auto& model = m.part("model");
    const auto& gallery = m.part("gallery");
    PartWriter model_out(tmp / "model.bin");
    std::string gallery_bytes;
    detail::Sha256 payload_hash, model_hash, gallery_hash;
    std::uint64_t offset = 0;
    for (std::size_t i = 0; i < m.chunk_count(); ++i) {
        auto bytes = chunk(i);
        auto expected = std::min<std::uint64_t>(m.chunk_size, m.payload_size - offset);
        if (bytes.size() != expected)
            throw PackageError("chunk " + std::to_string(i) + ": " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(expected));
        payload_hash.update(bytes);
        std::string_view view(bytes);
        auto model_end = model.offset + model.size;
        if (offset < model_end) {
            auto n = std::min<std::uint64_t>(view.size(), model_end - offset);
            model_hash.update(view.substr(0, n));
            model_check.update(view.substr(0, n));
            model_out.write(view.substr(0, n));
        }
        if (offset + view.size() > gallery.offset) {
            auto from = gallery.offset > offset ? gallery.offset - offset : 0;
            gallery_hash.update(view.substr(from));
            gallery_bytes.append(view.substr(from));
        }
        offset += view.size();
    }
    model_out.close();
    if (payload_hash.hex() != m.payload_sha256) throw PackageError("payload: sha256 does not match the manifest");
    if (model_hash.hex() != model.sha256) throw PackageError("part model: sha256 does not match the manifest");
    if (gallery_hash.hex() != gallery.sha256) throw PackageError("part gallery: sha256 does not match the manifest");
    model_check.finish();
    auto g = decode_gallery(gallery_bytes, m.match_threshold);
    if (g.entries.size() != m.gallery_entries)
        throw PackageError("gallery: " + std::to_string(g.entries.size()) + " entries, manifest says " + std::to_string(m.gallery_entries));
    check_gallery(g);
    detail::write_file_durable(tmp / "gallery.bin", gallery_bytes);
    detail::write_file_durable(tmp / "manifest.json", envelope);

    // Move the complete folder into place, then switch installed.json (the commit point).
    auto previous = inspect_install_folder(dir);
    auto final_dir = version_dir(dir, m.model_version);
    fs::remove_all(final_dir);
    fs::rename(tmp, final_dir);
    tmp_guard.commit();
    detail::fsync_path(versions);
    std::int64_t prev_version = previous.installed ? previous.installed->version : previous.previous_version;
    if (prev_version == m.model_version) prev_version = previous.installed ? previous.installed->previous_version : 0;
    std::int64_t refuse = previous.installed ? previous.installed->refuse_up_to : previous.refuse_up_to;
    write_installed_json(dir, m.model_version, prev_version, refuse);

    // Keep only the installed and the previous version.
    std::error_code ec;
    for (fs::directory_iterator it(versions, ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (name == std::to_string(m.model_version) || name == std::to_string(prev_version)) continue;
        std::error_code rm;
        fs::remove_all(it->path(), rm);
    }
    auto installed = read_installed(dir);
    return *installed;
}

InstalledModel install_package(const fs::path& dir, const Package& package, const PublicKey& key, std::string_view site,
                               bool allow_rollback) {
    auto m = verify_package(package, key, site);
    fs::create_directories(dir);
    if (auto problem = acceptance_problem(inspect_install_folder(dir, true, &key), m.model_version, allow_rollback);
        !problem.empty())
        throw PackageError(problem);
    return install_verified(dir, package.signed_manifest.envelope(), m, site,
                            [&](std::size_t i) { return std::string(package.chunk(i)); });
}

InstalledModel rollback_installed(const fs::path& dir) {
    auto installed = read_installed(dir);
    if (!installed) throw std::runtime_error("nothing is installed in " + dir.string());
    if (installed->previous_version == 0 || !fs::exists(version_dir(dir, installed->previous_version) / "manifest.json"))
        throw std::runtime_error("no previous version is kept in " + dir.string() + " to roll back to");
    write_installed_json(dir, installed->previous_version, 0, std::max(installed->refuse_up_to, installed->version));
    spdlog::info("rolled back {} from version {} to {}", dir.string(), installed->version, installed->previous_version);
    return *read_installed(dir);
}

MatchResult match_gallery(const Gallery& gallery, const Embedding& probe) {
    MatchResult best;
    best.distance = INFINITY;
    for (const auto& e : gallery.entries) {
        double d2 = 0;
        for (std::size_t i = 0; i < kEmbeddingDim; ++i) {
            double diff = static_cast<double>(e.embedding[i]) - probe[i];
            d2 += diff * diff;
        }
        double d = std::sqrt(d2);
        if (d < best.distance) {
            best.distance = d;
            best.name = e.name;
        }
    }
    best.matched = !gallery.entries.empty() && best.distance <= gallery.threshold;
    return best;
}

}  // namespace faceadapt::publish
